"""Shared fixtures: small experiment files written into a temporary folder; the real
services' fixtures (tests/services.py)."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from contract.datasets import DEFAULT_DATA_ROOTS

# The cluster's fixtures, for every test module that asks for them.
from tests.services import lost_node, ports, processes, ray_cluster, scratch  # noqa: F401

FASHION_MNIST = Path(DEFAULT_DATA_ROOTS["fashion_mnist"])

TINY = """\
name: tiny
grid:
  method: [random, {name: rotnet, samples: 128, epochs: 1, batch_size: 32}]
  images: [astronaut]
  augmentation: [full, none]
  layer: [conv1, conv2, conv3, conv4, conv5]
  probe_dataset: [fashion_mnist]
  seed: [0]
network: {width: 0.25, input_size: 64}
probe: {preset: fast, epochs: 2, train_samples: 500, test_samples: 500}
retries: 1
"""


@pytest.fixture
def write_spec(tmp_path: Path):
    """write_spec(text) -> path of an experiment file in tmp_path."""

    def write(text: str, name: str = "experiments.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def tiny_spec_text() -> str:
    return TINY


@pytest.fixture(scope="session")
def migrated_store_template(tmp_path_factory) -> Path:
    """An MLflow SQLite store at the current schema, made once per test session: opening a new
    SQLite store runs all of MLflow's schema migrations (about 4 s here), which every test's
    store would pay again. A fresh store's own migration is still run by the tests that write to
    a store of their own making (tests/test_cli.py)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path: Path, migrated_store_template: Path) -> str:
    """`tmp_path/mlflow.db`, the store a sweep run in tmp_path writes by default, already
    migrated (a copy of the session's template); its URI."""
    shutil.copy(migrated_store_template, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@contextmanager
def module_sandbox(folder: Path, template: Path, spec: str) -> Iterator[Path]:
    """A test module's sweep in a folder of its own (module-scoped fixtures cannot use
    `sweep_sandbox`): a copy of the migrated store, the file written, the folder as the working
    directory, no store or fault from the environment. Yields the file's path."""
    shutil.copy(template, folder / "mlflow.db")
    path = folder / "experiments.yaml"
    path.write_text(spec)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("MONOSWEEP_FAULTS", raising=False)
        yield path


@pytest.fixture
def sweep_sandbox(monkeypatch, tmp_path: Path, store: str):
    """A test's sweep runs in its own folder, store (migrated) and Ray, with no fault or store
    from the environment."""
    import ray

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MONOSWEEP_FAULTS", raising=False)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    ray.shutdown()
