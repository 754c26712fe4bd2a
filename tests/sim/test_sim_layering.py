"""genmat.sim is a leaf: it imports nothing else from genmat (but the error base, genmat.errors)
and nothing of ML/tracking."""

from __future__ import annotations

import ast
from pathlib import Path

import genmat.sim

FORBIDDEN = {"mlflow", "prefect", "lightning", "pytorch_lightning", "transformers", "diffusers", "sklearn"}


def test_sim_imports_only_itself_and_numerics():
    root = Path(genmat.sim.__file__).parent
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else ["genmat.sim"]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top not in FORBIDDEN, f"{path.name} imports {name}"
                if top == "genmat":
                    assert name in ("genmat.sim", "genmat.errors") or name.startswith("genmat.sim."), (
                        f"{path.name} imports {name}")
