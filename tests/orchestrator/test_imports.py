"""The driver plans, runs and reports without torch; the contract needs neither torch, ray nor
mlflow; the compute core needs neither ray nor mlflow (a GPU box has torch only)."""

from __future__ import annotations

import subprocess
import sys

import pytest

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
