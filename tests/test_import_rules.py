"""The layout's import rules (docs/architecture.md, "Packages"), checked on the AST of every module.

Each package of `system/` may import only the packages listed for it; some third-party packages belong to one
place only (Redis to the replay store, Ray to the actors, learners, system/runtime and the driver). Imports inside functions
count too. Test folders mirror the packages: tests/<package>/test_<module>.py names a module of that package.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("model", "objectives", "imagination", "training", "envs", "replay", "data", "run", "phases", "play")
# system/runtime/ drives the Ray actors from the driver: it knows Ray, the library and the shells, and only the
# driver imports it. It is not library code (nothing in LIBRARY may import it).
RUNTIME = "runtime"

# package -> the system packages it may import (itself included). "main" is system/main.py, the driver.
ALLOWED: dict[str, set[str]] = {
    "model": {"model"},
    "objectives": {"model", "objectives"},
    "imagination": {"model", "objectives", "imagination"},
    "training": {"model", "objectives", "imagination", "training"},
    "envs": {"envs"},
    "replay": {"replay"},
    "data": {"envs", "replay", "data"},
    "run": {"model", "objectives", "imagination", "training", "envs", "replay", "data", "run"},
    "phases": {"model", "objectives", "imagination", "training", "envs", "replay", "data", "run", "phases"},
    # the play server: a run's models, the cached sampler, Crafter and held-out data; not the phases
    "play": {"model", "objectives", "imagination", "training", "envs", "replay", "data", "run", "play"},
    "system": set(),              # system/__init__.py
    "main": set(LIBRARY) | {RUNTIME},
    "evaluate": set(LIBRARY),     # system/evaluate.py: a run's checkpoints in, quality.json out; no Ray
    RUNTIME: set(LIBRARY) | {RUNTIME},
    "actors": set(LIBRARY),
    "learners": set(LIBRARY),
}
# Command-line entry points that read the run's config: they may also import the run plumbing.
ENTRY_POINTS = {"system/data/ingest.py": {"run"}}

# third-party package -> the places (package names as in ALLOWED) that may import it
THIRD_PARTY: dict[str, set[str]] = {
    "redis": {"replay"},
    "ray": {"main", RUNTIME, "actors", "learners"},
    "wandb": {"run"},
    "gymnasium": {"envs"},
    "crafter": {"envs"},
    "minerl": {"envs"},
    "aiohttp": {"play"},     # the play server's web layer
}
# nothing in the library imports these
NEVER = {"tests", "benchmarks"}


def place_of(path: Path) -> str:
    """system/model/tokenizer.py -> 'model'; system/main.py -> 'main'; system/__init__.py -> 'system';
    actors/x.py -> 'actors'."""
    parts = path.relative_to(ROOT).parts
    if parts[0] == "system":
        return {"main.py": "main", "evaluate.py": "evaluate", "__init__.py": "system"}.get(parts[1], parts[1])
    return parts[0]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module name) of every import in the file, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from system import model` imports the package system.model
            found += [(node.lineno, f"{module}.{alias.name}" if module == "system" else module) for alias in node.names]
    return found


def library_files() -> list[Path]:
    files = [p for folder in ("system", "actors", "learners") for p in sorted((ROOT / folder).rglob("*.py"))]
    return [p for p in files if "__pycache__" not in p.parts]


def violations(path: Path) -> list[str]:
    place, rel = place_of(path), str(path.relative_to(ROOT))
    if place not in ALLOWED:
        return [f"{rel}: package system/{place}/ has no import rule (add it to ALLOWED and docs/architecture.md)"]
    allowed = ALLOWED[place] | ENTRY_POINTS.get(rel, set())
    found = []
    for line, module in imported_modules(path):
        parts = module.split(".")
        top = parts[0]
        if top == "system" and len(parts) > 1:
            target = "main" if parts[1] == "main" else parts[1]
            if target != place and target not in allowed:
                found.append(f"{rel}:{line}: system/{place}/ may not import {module}")
        elif top in ("actors", "learners") and place not in ("main", RUNTIME, "actors", "learners"):
            found.append(f"{rel}:{line}: the library may not import the Ray shells ({module})")
        elif top in NEVER:
            found.append(f"{rel}:{line}: the library may not import {module}")
        elif top in THIRD_PARTY and place not in THIRD_PARTY[top]:
            found.append(f"{rel}:{line}: {top} belongs to {sorted(THIRD_PARTY[top])}, not system/{place}/ ({module})")
    return found


def test_every_module_keeps_the_import_rules():
    files = library_files()
    assert len(files) > 50, "the walk found too few modules"
    problems = [problem for path in files for problem in violations(path)]
    assert not problems, "\n".join(problems)


def test_every_library_package_has_a_rule():
    packages = {p.name for p in (ROOT / "system").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(LIBRARY) | {RUNTIME}, packages ^ (set(LIBRARY) | {RUNTIME})
    loose = sorted(p.name for p in (ROOT / "system").glob("*.py") if p.name not in ("__init__.py", "main.py",
                                                                                      "evaluate.py"))
    assert not loose, f"modules outside a package: {loose} (every module belongs to one package)"


@pytest.mark.parametrize("source, place, message", [
    ("from system.replay import make_store\n", "model", "may not import system.replay"),
    ("def f():\n    from system.training.optim import make_optimizer\n", "objectives", "may not import system.training"),
    ("import redis\n", "training", "redis belongs to"),
    ("import ray\n", "imagination", "ray belongs to"),
    ("from system.runtime.collection import collect_env_steps\n", "phases", "may not import system.runtime"),
    ("from system.phases.train_tokenizer import run_tokenizer_phase\n", "run", "may not import system.phases"),
    ("from system import replay\n", "envs", "may not import system.replay"),
    ("from ..replay import make_store\n", "model", "may not import system.replay"),
    ("from tests.helpers.dynamics import tiny_model\n", "model", "may not import tests"),
    ("import ray\n", "play", "ray belongs to"),
    ("import redis\n", "play", "redis belongs to"),
    ("from system.phases.live_eval import eval_seed\n", "play", "may not import system.phases"),
    ("from system.runtime.collection import collect_env_steps\n", "play", "may not import system.runtime"),
    ("from aiohttp import web\n", "imagination", "aiohttp belongs to"),
])
def test_the_check_catches_a_forbidden_import(tmp_path, monkeypatch, source, place, message):
    """The rule check itself: a module written into a package with a forbidden import is reported."""
    fake_root = tmp_path / "repo"
    module = fake_root / "system" / place / "bad.py"
    module.parent.mkdir(parents=True)
    module.write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake_root)
    problems = violations(module)
    assert any(message in p for p in problems), problems


def test_allowed_imports_pass_the_check(tmp_path, monkeypatch):
    fake_root = tmp_path / "repo"
    module = fake_root / "system" / "training" / "ok.py"
    module.parent.mkdir(parents=True)
    module.write_text("import torch\nfrom system.model.dynamics import Dynamics\nfrom .optim import make_optimizer\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake_root)
    assert violations(module) == []


# Tests of the whole tree rather than one module. Learning tests (test_*_learning.py) train several modules
# together on real data and sit in the package of the trainers they drive.
# tests/runtime/test_resume.py kills the main job and resumes it: the driver, the phases, the replay store and
# the imagination workers together.
CROSS_MODULE_TESTS = {"tests/test_import_rules.py", "tests/runtime/test_resume.py"}


def test_test_files_mirror_the_modules_they_test():
    misplaced = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        rel = path.relative_to(ROOT)
        if str(rel) in CROSS_MODULE_TESTS or path.stem.endswith("_learning"):
            continue
        module = path.stem.removeprefix("test_")
        if len(rel.parts) == 2:          # tests/test_main.py -> system/main.py
            target = ROOT / "system" / f"{module}.py"
        elif rel.parts[1] == "deploy":   # tests/deploy/test_x.py -> deploy/x.py, deploy/x/ or deploy/X (Dockerfile)
            if not any(p.name.lower().removesuffix(".py") == module for p in (ROOT / "deploy").iterdir()):
                misplaced.append(f"{rel}: nothing named {module} in deploy/")
            continue
        elif rel.parts[1] in ("actors", "learners", "benchmarks"):   # tests/actors/test_x.py -> actors/x.py, ...
            target = ROOT / rel.parts[1] / f"{module}.py"
        else:                            # tests/<package>/test_<module>.py -> system/<package>/<module>.py
            target = ROOT / "system" / rel.parts[1] / f"{module}.py"
        if not target.exists():
            misplaced.append(f"{rel}: no module {target.relative_to(ROOT)}")
    assert not misplaced, "\n".join(misplaced)
