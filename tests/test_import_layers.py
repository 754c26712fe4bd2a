"""Import layers (docs/architecture.md, "Who may import whom"), checked by reading
every module under genmat/ and pipelines/ with ``ast`` — nothing is imported.

Every import statement counts, including ones inside functions and under
``if TYPE_CHECKING:``. Adding a layer is one line in one of the two dicts below.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("genmat", "pipelines")  # top-level packages that are scanned

# layer (module prefix) -> the genmat/pipelines modules it may import besides itself.
# Third-party imports are free here; gate them in ONLY_FROM.
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "genmat.errors": (),
    "genmat.sim": (),
    "genmat.conditions": (),
    "genmat.nn": (),
    "genmat.validate": ("genmat.sim", "genmat.conditions"),  # a validator never imports a model
    "genmat.diffusion": ("genmat.nn",),
    "genmat.vae": ("genmat.nn",),
    "genmat.data": ("genmat.conditions",),
    # a generative family: networks, objectives, samplers and the one training loop — no data, no modality
    "genmat.methods": ("genmat.nn", "genmat.diffusion", "genmat.vae", "genmat.train"),
    "genmat.tasks": ("genmat.conditions",),  # targets and tasks are data: no model, no modality
    # the recipe generator: a network, the flow-matching objective and sampler, the one training loop
    "genmat.recipes": ("genmat.conditions", "genmat.tasks", "genmat.nn", "genmat.diffusion", "genmat.train"),
}

# imported module (prefix) -> the only importers (prefixes) allowed to import it.
ONLY_FROM: dict[str, tuple[str, ...]] = {
    "prefect": ("pipelines",),
    "mlflow": ("genmat.tracking",),  # genmat/tracking.py or genmat/tracking/
    "botorch": ("genmat.loop.screening", "genmat.baselines"),  # the GP screen and the BO baseline
    "gpytorch": ("genmat.loop.screening", "genmat.baselines"),
    "distributed": ("genmat.loop.steps",),  # the oracle's fan-out (simulate_step)
    "dask": ("genmat.loop.steps",),
    "torch.distributed": ("genmat.parallel",),
    # HyperSpy's EELS package: the EELS oracle and its validators
    "exspy": ("genmat.sim.eels", "genmat.validate.eels"),
    "hyperspy": ("genmat.sim.eels", "genmat.validate.eels"),  # data-parallel training: one module joins torchrun's group
    # genmat never imports pipelines, except genmat/cli.py: the application edge
    # that starts flows (documented exception).
    "pipelines": ("pipelines", "genmat.cli"),
}


# modules every layer may import: the one error base, the one configuration base and the data-parallel shard
# whose batch draws the objectives use (genmat/errors.py imports nothing of genmat; genmat/config.py and
# genmat/parallel.py only genmat.errors)
EVERYWHERE = ("genmat.errors", "genmat.config", "genmat.parallel")


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover(base: Path, roots=ROOTS) -> dict[str, Path]:
    """Module name -> file for every .py under the roots."""
    mods: dict[str, Path] = {}
    for root in roots:
        for path in sorted((base / root).rglob("*.py")):
            mods[module_name(path, base)] = path
    return mods


def imports_of(path: Path, module: str, known: set[str]) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file.

    ``from a import b`` counts as importing ``a.b`` when that is a module of the
    scanned tree, else ``a``. Relative imports are resolved against ``module``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                keep = len(parts) - (node.level - 1)
                base = ".".join(parts[: max(keep, 0)])
                source = ".".join(p for p in (base, node.module) if p)
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.append((node.lineno, sub if sub in known else source))
    return found


def find_violations(base: Path, may_import=MAY_IMPORT, only_from=ONLY_FROM, roots=ROOTS) -> list[str]:
    """One readable line per forbidden import under ``base``."""
    mods = discover(base, roots)
    known = set(mods)
    problems = []
    for module, path in mods.items():
        try:
            imported = imports_of(path, module, known)
        except SyntaxError as err:
            problems.append(f"{path.relative_to(base)}:{err.lineno}: cannot be parsed ({err.msg})")
            continue
        where = lambda line: f"{path.relative_to(base)}:{line}: {module} imports"  # noqa: E731
        for line, target in imported:
            internal = target.split(".")[0] in roots and not any(_under(target, e) for e in EVERYWHERE)
            for layer, allowed in may_import.items():
                if not _under(module, layer) or not internal or _under(target, layer):
                    continue
                if not any(_under(target, a) for a in allowed):
                    rule = ", ".join(allowed) if allowed else "nothing of genmat/pipelines"
                    problems.append(f"{where(line)} {target}, but {layer} may import only {rule} (and itself)")
            for gated, importers in only_from.items():
                if _under(target, gated) and not any(_under(module, i) for i in importers):
                    problems.append(f"{where(line)} {target}, but only {', '.join(importers)} may import {gated}")
    return problems


# ----------------------------------------------------------------------------- the real tree
def test_repository_respects_import_layers():
    mods = discover(REPO)
    assert "genmat" in mods and len(mods) > 5, f"scan found too few modules under {REPO}: {sorted(mods)}"
    problems = find_violations(REPO)
    assert not problems, "import layer violations (see docs/architecture.md):\n  " + "\n  ".join(problems)


# ----------------------------------------------------------------------------- the checker itself
def _write(base: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


CLEAN = {
    "genmat/__init__.py": "",
    "genmat/conditions.py": "import numpy as np\n",
    "genmat/nn/__init__.py": "from .unet import UNet\n",
    "genmat/nn/unet.py": "import torch\nfrom . import blocks\n",
    "genmat/nn/blocks.py": "",
    "genmat/sim/__init__.py": "from genmat.sim.core import f\n",
    "genmat/sim/core.py": "import scipy\n",
    "genmat/diffusion/__init__.py": "from genmat.nn import UNet\nfrom genmat.diffusion import paths\n",
    "genmat/diffusion/paths.py": "from ..nn.blocks import x\n",
    "genmat/validate/__init__.py": "from genmat import sim\nfrom genmat.conditions import ConditionSchema\n",
    "genmat/tracking/__init__.py": "",
    "genmat/tracking/mlflow_tracker.py": "import mlflow\nfrom mlflow.tracking import MlflowClient\n",
    "genmat/loop.py": "from genmat import nn, sim, validate\nfrom genmat.diffusion import paths\n",
    "genmat/cli.py": "from pipelines import flows\n",
    "pipelines/__init__.py": "",
    "pipelines/flows.py": "from prefect import flow\nimport genmat.loop\n",
}


def test_checker_passes_a_clean_package(tmp_path):
    _write(tmp_path, CLEAN)
    assert find_violations(tmp_path) == []


@pytest.mark.parametrize(
    "rel, text, fragment",
    [
        ("genmat/sim/bad.py", "import genmat.nn\n", "genmat.sim.bad imports genmat.nn, but genmat.sim may import only nothing"),
        ("genmat/sim/bad.py", "from genmat import nn\n", "genmat.sim.bad imports genmat.nn"),
        ("genmat/sim/bad.py", "def f():\n    from genmat.conditions import X\n", "bad.py:2: genmat.sim.bad imports genmat.conditions"),
        ("genmat/conditions.py", "import genmat\n", "genmat.conditions imports genmat, but"),
        ("genmat/nn/bad.py", "from ..diffusion import paths\n", "genmat.nn.bad imports genmat.diffusion.paths"),
        ("genmat/validate/bad.py", "from genmat.nn import UNet\n", "genmat.validate may import only genmat.sim, genmat.conditions"),
        ("genmat/validate/bad.py", "from genmat.loop import x\n", "genmat.validate.bad imports genmat.loop"),
        ("genmat/diffusion/bad.py", "import genmat.sim.core\n", "genmat.diffusion may import only genmat.nn"),
        ("genmat/loop.py", "import prefect\n", "only pipelines may import prefect"),
        ("genmat/validate/bad.py", "from prefect.tasks import task\n", "imports prefect.tasks, but only pipelines"),
        ("genmat/train.py", "import mlflow.pytorch\n", "only genmat.tracking may import mlflow"),
        ("pipelines/flows.py", "import mlflow\n", "pipelines.flows imports mlflow"),
        ("genmat/trackingx.py", "import mlflow\n", "genmat.trackingx imports mlflow"),
        ("genmat/loop.py", "from pipelines.flows import f\n", "genmat.loop imports pipelines.flows, but only pipelines, genmat.cli"),
        ("genmat/cli/__init__.py", "", None),  # genmat.cli as a package is still the edge
        ("genmat/sim/broken.py", "def f(:\n", "cannot be parsed"),
    ],
)
def test_checker_catches_each_forbidden_import(tmp_path, rel, text, fragment):
    files = dict(CLEAN, **{rel: text})
    if rel == "genmat/cli/__init__.py":
        files.pop("genmat/cli.py")
        files[rel] = "import pipelines.flows\n"
    _write(tmp_path, files)
    problems = find_violations(tmp_path)
    if fragment is None:
        assert problems == []
    else:
        assert len(problems) == 1 and fragment in problems[0], problems


def test_rules_are_data(tmp_path):
    """A new layer is one dict entry, and it is enforced."""
    _write(tmp_path, dict(CLEAN, **{"genmat/sim/core.py": "from genmat.conditions import X\n"}))
    assert find_violations(tmp_path, may_import={"genmat.nn": ()}) == []
    problems = find_violations(tmp_path, may_import={"genmat.sim": ("genmat.nn",)})
    assert len(problems) == 1 and "genmat.sim may import only genmat.nn" in problems[0]


# ---------------------------------------------------------------- generic code names no modality
GENERIC = ("genmat/loop", "genmat/validate/report.py", "pipelines")  # what must work for any modality (issue 12)


def _modality_words() -> set[str]:
    """Every built-in modality's name and condition fields."""
    from genmat.modalities import BUILTIN, get_modality

    words = set(BUILTIN)
    for name in BUILTIN:
        if name != "imported":  # its fields are whatever a lab imports
            words.update(f.name for f in get_modality(name).schema.fields)
    return words


def _code_words(path: Path) -> list[tuple[int, str]]:
    """Identifiers and string constants of a module — its docstrings and comments excluded."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant) and isinstance(node.body[0].value.value, str)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            out.append((node.lineno, node.value))
        elif isinstance(node, ast.Name):
            out.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            out.append((node.lineno, node.attr))
    return out


def test_generic_code_names_no_modality():
    """The loop, the report and the flows read everything modality-specific from the
    modality (docs/modalities.md): no built-in modality's name or condition field appears
    in their code (as a word of a string or an identifier)."""
    import re

    words = _modality_words()
    pattern = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(map(re.escape, sorted(words, key=len, reverse=True)))
                         + r")(?![A-Za-z0-9])")
    files = [p for g in GENERIC for p in ([REPO / g] if g.endswith(".py") else sorted((REPO / g).rglob("*.py")))]
    assert len(files) > 5
    found = [f"{p.relative_to(REPO)}:{line}: {text!r}" for p in files for line, text in _code_words(p)
             if pattern.search(text.replace("sim_", " ").replace("target_", " "))]
    assert not found, "modality names in generic code:\n" + "\n".join(found)
