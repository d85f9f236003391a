"""Every bench script runs, in its tiny mode, and writes its JSON (no timings are checked:
speed targets live in bench/README.md). The ones that build an MLflow store or spawn
processes are `slow`. Also: GPU memory is released between jobs, where a GPU exists."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch

FAST = ["augment", "probes", "gpu"]
SLOW = ["orchestration", "logging_overhead", "memory"]


def run(name: str, out: Path, *extra: str) -> dict:
    module = importlib.import_module(f"bench.{name}")
    module.main(["--tiny", "--out", str(out), *extra])
    return json.loads(out.read_text())


@pytest.mark.parametrize("name", FAST)
def test_bench_runs_tiny(name: str, tmp_path: Path, fashion_root: str):
    result = run(name, tmp_path / f"{name}.json")
    assert result["bench"] == name and result["machine"]["cpu"]
    assert "results" in result or "skipped" in result


def test_gpu_bench_code_path_on_the_cpu(tmp_path: Path):
    """The GPU script's code, run small on the CPU: it must work before it meets a GPU."""
    result = run("gpu", tmp_path / "gpu.json", "--device", "cpu")
    cases = result["results"]["cases"]
    assert {"fp32 eager", "bf16 autocast", "bf16 + channels_last"} <= set(cases)
    assert result["results"]["flops_per_step"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_slow_bench_runs_tiny(name: str, tmp_path: Path, fashion_root: str):
    result = run(name, tmp_path / f"{name}.json")
    assert result["bench"] == name and "results" in result


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_memory_is_released_between_jobs():
    from bench.memory import gpu_memory_between_jobs

    report = gpu_memory_between_jobs(jobs=3)
    after = report["allocated_after_each"]
    # Nothing a job allocated outlives it: the next job starts from the same allocation.
    assert max(after) - report["allocated_before"] < 2**20, report
    assert after[-1] <= after[0], report


@pytest.fixture
def fashion_root() -> str:
    from contract.datasets import DEFAULT_DATA_ROOTS

    root = DEFAULT_DATA_ROOTS["fashion_mnist"]
    if not Path(root).is_dir():
        pytest.skip(f"Fashion-MNIST not installed at {root} (run `make data`)")
    return root
