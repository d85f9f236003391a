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


def test_gpu_bench_code_path_on_the_cpu(tmp_path: Path, capsys):
    """The GPU script's code, run small on the CPU: it must work before it meets a GPU. It times
    production's steps (training.train_step, the probes' view_features + ProbeTrainer.step) per
    compute setting, and says where the measured MFU table comes from."""
    result = run("gpu", tmp_path / "gpu.json", "--device", "cpu")
    for cases in (result["results"]["cases"], result["results"]["probe_cases"]):
        assert set(cases) == {"fp32", "bf16", "bf16 + channels_last"}  # compile: left out with --tiny
        assert all(c["s_per_step"] > 0 and c["mfu"] is None for c in cases.values())  # a CPU has no bf16 peak
    assert result["results"]["flops_per_step"]["pretrain"] > 0 and result["results"]["flops_per_step"]["probe"] > 0
    out = capsys.readouterr().out
    assert "MEASURED_MFU: no bf16 peak for this device (a CPU): on a GPU, `python -m bench.gpu`" in out


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


def test_the_measured_mfu_lines_paste_into_the_estimate(monkeypatch):
    """What bench.gpu prints on a GPU is MEASURED_MFU's syntax, keyed as the estimate looks a
    compute setting up (ComputeConfig.label)."""
    from bench.gpu import measured_mfu
    from contract.compute import ComputeConfig
    from orchestrator import estimate

    cases = {"fp32": {"mfu": 0.12}, "bf16 + channels_last": {"mfu": 0.41}}
    lines = measured_mfu({"peak_bf16": 989e12, "device_name": "NVIDIA H100 80GB HBM3", "cases": cases})
    assert lines[0] == "MEASURED_MFU entries for orchestrator/estimate.py:"
    pasted = eval("{" + "\n".join(lines[1:]) + "}", {"Measured": estimate.Measured})  # noqa: S307
    monkeypatch.setattr(estimate, "MEASURED_MFU", pasted)
    rate = estimate.throughput(ComputeConfig(precision="bf16"))
    assert rate.mfu == 0.41 and "on NVIDIA H100 80GB HBM3" in rate.source
    assert estimate.throughput(ComputeConfig(precision="bf16", compile=True)).source.startswith("assumed for bf16")
