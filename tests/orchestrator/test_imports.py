"""The import graph docs/ARCHITECTURE.md draws, read from the source (every module's imports,
parsed with ast, at the top of the module or inside a function) and checked in fresh processes:
the contract needs neither torch, ray nor mlflow; the compute core neither ray, mlflow nor the
driver; the driver plans, validates and reports without torch, and reaches the workers only
inside the functions that run a job or measure its cost."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("contract", "orchestrator", "workers")

# What each package may import at the top of a module, besides the standard library and itself.
TOP = {
    "contract": {"pydantic", "pydantic_core", "PIL"},
    "workers": {"contract", "torch", "torchvision", "numpy"},
    "orchestrator": {"contract", "pydantic", "pydantic_core", "yaml", "numpy", "ray", "mlflow", "matplotlib"},
}
# The only modules that import these (anywhere in them): one module talks to Ray, one layer to
# MLflow, one module draws.
ONLY_IN = {
    "ray": ("orchestrator/ray_driver.py",),
    "mlflow": ("orchestrator/record/",),
    "matplotlib": ("orchestrator/figures.py",),
}
# The driver's functions that import the workers (or torch): each runs a job on a worker or
# measures what one costs, and imports them where it runs.
LAZY = {
    "orchestrator/jobs.py": {"run_pretrain": {"workers"}, "run_evaluation": {"workers"}, "_readable": {"torch"}},
    "orchestrator/evaluations/linear_probe.py": {"LinearProbe.run": {"workers"}},
    "orchestrator/evaluations/finetune_frozen.py": {"FinetuneFrozen.run": {"workers"}},
    "orchestrator/evaluations/style_transfer.py": {"StyleTransfer.run": {"workers"}},
    "orchestrator/estimate.py": {"each": {"workers"}},
    "orchestrator/cli/env.py": {"main": {"torch"}},
}


def imports(path: Path) -> list[tuple[str, str | None]]:
    """(top-level package imported, the function that imports it or None at module level) for
    every absolute import of a module; imports under `if TYPE_CHECKING:` never run."""
    found: list[tuple[str, str | None]] = []

    def walk(node: ast.AST, scope: list[str], in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in child.names] if isinstance(child, ast.Import) else [child.module or ""]
                if not (isinstance(child, ast.ImportFrom) and child.level):
                    found.extend((n.split(".")[0], ".".join(scope) if in_function else None) for n in names)
            function = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            named = [*scope, child.name] if function or isinstance(child, ast.ClassDef) else scope
            walk(child, named, in_function or function or isinstance(child, ast.Lambda))

    walk(ast.parse(path.read_text()), [], False)
    return [(root, where) for root, where in found if root not in sys.stdlib_module_names and root != "__future__"]


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_at_its_top_only_what_the_architecture_allows(package):
    bad = [f"{path.relative_to(ROOT)}: {root}" for path in modules(package) for root, where in imports(path)
           if where is None and root not in TOP[package] | {package}]
    assert not bad


def test_the_driver_reaches_the_workers_and_torch_only_inside_the_listed_functions():
    found: dict[str, dict[str, set[str]]] = {}
    for path in modules("orchestrator"):
        for root, where in imports(path):
            if root in ("workers", "torch", "torchvision"):
                assert where is not None, f"{path.relative_to(ROOT)} imports {root} at its top"
                found.setdefault(str(path.relative_to(ROOT)), {}).setdefault(where, set()).add(root)
    assert found == LAZY


def test_ray_mlflow_and_matplotlib_each_have_one_place():
    for library, places in ONLY_IN.items():
        users = {str(p.relative_to(ROOT)) for package in PACKAGES for p in modules(package)
                 if any(root == library for root, _ in imports(p))}
        assert users and all(u.startswith(places) for u in users), (library, users)


def test_the_compute_core_and_the_contract_never_import_the_driver_ray_or_mlflow():
    for package, never in (("workers", {"orchestrator", "ray", "mlflow"}), ("contract", {"orchestrator", "workers"})):
        bad = [f"{p.relative_to(ROOT)}: {root}" for p in modules(package) for root, _ in imports(p) if root in never]
        assert not bad


CHECK = """
import importlib, pkgutil, sys
import {package}
for m in pkgutil.walk_packages({package}.__path__, "{package}."):
    importlib.import_module(m.name)
loaded = sorted({{name.split(".")[0] for name in sys.modules}} & {forbidden})
assert not loaded, loaded
"""


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("orchestrator", {"torch", "torchvision"}),
        ("contract", {"torch", "ray", "mlflow"}),
        ("workers", {"ray", "mlflow"}),
    ],
)
def test_package_imports_nothing_forbidden(package, forbidden):
    code = CHECK.format(package=package, forbidden=forbidden)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


PLANNING = """
import sys
from orchestrator.cli.main import main
assert main(sys.argv[1:]) == 0
loaded = sorted({name.split(".")[0] for name in sys.modules} & {"mlflow", "matplotlib", "ray", "torch"})
assert not loaded, loaded
"""


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_validate_and_plan_load_neither_mlflow_matplotlib_ray_nor_torch(command):
    file = ROOT / "examples" / "quickstart.yaml"
    result = subprocess.run([sys.executable, "-c", PLANNING, command, str(file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
