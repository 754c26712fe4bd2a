"""What a scientist would do instead of genmat, on the same oracle, targets and tolerances.

- :func:`lookup`: the best existing sample of a table the scientist already has
  (no new oracle calls);
- :func:`random_library`: processing drawn from the modality's prior and simulated —
  a library shared by every target;
- :func:`bayes_opt`: Bayesian optimisation per target over the processing box
  (botorch: GP + qLogEI on the tolerance-unit violation, two Sobol points to start,
  stop at the first validated hit, capped).

Each returns one row per target (``hit``, the recipe, its simulated properties,
``calls_at_hit``) and a (calls, targets hit) curve; oracle calls go through the same
:class:`genmat.loop.recipes.CountingOracle` as genmat's own search.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from genmat.loop.recipes import CountingOracle, from_unit_cube, unit_cube
from genmat.tasks import TargetSet

log = logging.getLogger(__name__)


@dataclass
class BaselineResult:
    recipes: pd.DataFrame  # one row per target: target_id, hit, calls_at_hit, processing + properties of the hit
    history: list[tuple[int, int]]  # (oracle calls, targets hit)
    oracle_calls: int
    table: pd.DataFrame | None = None  # what was simulated, in call order (random library)


def _first_hits(targets: TargetSet, table: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """For each target, the first row of ``table`` that hits it (row order = call order)."""
    ok = targets.hits(targets.values_of(table))  # (N, T)
    any_hit = ok.any(axis=0)
    first = np.where(any_hit, ok.argmax(axis=0), -1)
    rows = [dict(table.iloc[i].to_dict(), calls_at_hit=i + 1) if i >= 0 else {} for i in first]
    recipes = pd.DataFrame({"target_id": np.arange(len(targets)), "hit": any_hit}).join(pd.DataFrame(rows))
    return recipes, first


def lookup(targets: TargetSet, table: pd.DataFrame) -> BaselineResult:
    """The first existing sample that meets each target: 0 new oracle calls."""
    recipes, _ = _first_hits(targets, table)
    recipes["calls_at_hit"] = 0
    hits = int(recipes["hit"].sum())
    return BaselineResult(recipes, [(0, hits)], 0)


def random_library(modality, targets: TargetSet, budget: int, *, seed: int = 0,
                   oracle: CountingOracle | None = None) -> BaselineResult:
    """``budget`` prior draws simulated at once; the curve is the targets hit by the
    first b draws, for every b."""
    oracle = oracle or CountingOracle(modality, seed=seed)
    if budget < 1:
        recipes = pd.DataFrame({"target_id": np.arange(len(targets)), "hit": False, "calls_at_hit": np.nan})
        return BaselineResult(recipes, [(0, 0)], 0, pd.DataFrame())
    table = oracle.draw(budget, "library", seed)
    recipes, first = _first_hits(targets, table)
    found = np.sort(first[first >= 0] + 1)
    history = [(0, 0)] + [(int(c), i + 1) for i, c in enumerate(found)] + [(budget, len(found))]
    return BaselineResult(recipes, history, budget, table)


def bayes_opt(modality, targets: TargetSet, *, max_calls: int = 40, n_init: int = 2, seed: int = 0,
              oracle: CountingOracle | None = None, raw_samples: int = 128, restarts: int = 4) -> BaselineResult:
    """Per-target Bayesian optimisation (GP + qLogEI on −violation), one call at a time."""
    import torch
    from botorch.acquisition.logei import qLogExpectedImprovement
    from botorch.exceptions import InputDataWarning
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Standardize
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood
    import warnings

    oracle = oracle or CountingOracle(modality, seed=seed)
    dim = len(modality.schema.subset("processing"))
    bounds = torch.stack([torch.zeros(dim), torch.ones(dim)]).double()
    rows_out, history, total = [], [(0, 0)], 0
    hits = 0
    for i in range(len(targets)):
        sobol = torch.quasirandom.SobolEngine(dim, scramble=True, seed=seed * 100_003 + i)
        xs, ys, hit_row = [], [], None
        for k in range(max_calls):
            if k < n_init:
                x = sobol.draw(1).double()
            else:
                X, Y = torch.cat(xs), torch.tensor(ys, dtype=torch.double)[:, None]
                with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
                    warnings.simplefilter("ignore", InputDataWarning)
                    torch.manual_seed(seed * 100_003 + i * 1000 + k)
                    gp = SingleTaskGP(X, Y, outcome_transform=Standardize(m=1))
                    try:
                        fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
                    except Exception:  # noqa: BLE001 — a failed hyperparameter fit keeps the prior's values
                        pass
                    acq = qLogExpectedImprovement(gp, best_f=Y.max())
                    x, _ = optimize_acqf(acq, bounds=bounds, q=1, num_restarts=restarts, raw_samples=raw_samples)
            rows = oracle(from_unit_cube(modality, x.numpy()), "bayes_opt")
            v = float(targets.violation(targets.values_of(rows), i)[0])
            xs.append(x.reshape(1, dim))
            ys.append(-v if np.isfinite(v) else -1e3)
            total += 1
            if v <= 0:
                hit_row = dict(rows.iloc[0].to_dict(), calls_at_hit=k + 1)
                break
        hits += hit_row is not None
        history.append((total, hits))
        rows_out.append({"target_id": i, "hit": hit_row is not None, "calls": len(xs), **(hit_row or {})})
        log.info("bayes_opt target %d: %s after %d calls", i, "hit" if hit_row else "no hit", len(xs))
    return BaselineResult(pd.DataFrame(rows_out), history, total)




STORED_BENCHMARK = Path(__file__).resolve().parents[1] / "data" / "design_benchmark.json"


def stored_benchmark(task: str, path: Path = STORED_BENCHMARK) -> dict | None:
    """The design benchmark's stored rows for ``task`` (``data/design_benchmark.json``, written
    by ``benchmarks/design.py --store``), or None when there are none."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    found = next((t for t in data.get("tasks", []) if t.get("task") == task), None)
    return None if found is None else {**found, "timestamp": data.get("machine", {}).get("timestamp_utc")}


def compare_at_budget(modality, targets: TargetSet, budget: int, *, task: str | None = None, seed: int = 0
                      ) -> list[dict]:
    """What a scientist would get instead at genmat's oracle budget: a random library of the
    same size, run now (its calls are the comparison's own), and — for a registered task —
    per-target Bayesian optimisation as the stored design benchmark measured it."""
    lib = random_library(modality, targets, budget, seed=seed + 17)
    rows = [{"approach": "a random library of the same budget", "oracle_calls": budget,
             "targets_hit": int(lib.recipes["hit"].sum()), "targets": len(targets), "source": "this run"}]
    stored = stored_benchmark(task) if task else None
    if stored:
        for r in stored["rows"]:
            if r["approach"].startswith("Bayesian optimisation"):
                rows.append({"approach": r["approach"], "oracle_calls": r["oracle_calls"],
                             "targets_hit": r["targets_hit"], "targets": r["targets"],
                             "source": f"stored benchmark {stored['timestamp']} (data/design_benchmark.json)"})
    return rows


__all__ = ["BaselineResult", "bayes_opt", "compare_at_budget", "lookup", "random_library", "stored_benchmark",
           "unit_cube"]
