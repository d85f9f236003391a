"""Shared fixtures: small experiment files written into a temporary folder; the real
services' fixtures (tests/services.py)."""

from __future__ import annotations

import textwrap
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


@pytest.fixture
def sweep_sandbox(monkeypatch, tmp_path: Path):
    """A test's sweep runs in its own folder, store and Ray, with no fault or store from the
    environment."""
    import ray

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MONOSWEEP_FAULTS", raising=False)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    ray.shutdown()
