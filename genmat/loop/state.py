"""Loop state on disk: which steps of which iteration are done, and their results.

Written atomically after every step, so a killed loop resumes at the last
completed step. Steps themselves are idempotent (see ``steps.py``), so a step
that was interrupted half-way is simply run again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genmat.atomic import atomic_write


@dataclass
class LoopState:
    path: Path
    config: dict = field(default_factory=dict)
    steps: dict[str, Any] = field(default_factory=dict)  # "iter2/train" -> result dict
    history: list[dict] = field(default_factory=list)  # one metrics row per finished iteration
    tracking: dict[str, Any] = field(default_factory=dict)  # run ids, champion score
    finished: bool = False
    stop_reason: str = ""

    @classmethod
    def load(cls, path: str | Path) -> "LoopState":
        path = Path(path)
        if not path.exists():
            return cls(path)
        d = json.loads(path.read_text())
        return cls(path, d.get("config", {}), d.get("steps", {}), d.get("history", []), d.get("tracking", {}),
                   d.get("finished", False), d.get("stop_reason", ""))

    def save(self) -> None:
        body = {k: getattr(self, k) for k in ("config", "steps", "history", "tracking", "finished", "stop_reason")}
        atomic_write(self.path, lambda tmp: tmp.write_text(json.dumps(body, indent=2, default=str)))

    def done(self, key: str) -> bool:
        return key in self.steps

    def record(self, key: str, result: Any) -> Any:
        self.steps[key] = result
        self.save()
        return result
