"""`monosweep plan FILE --estimate`: FLOPs measured on the workers' modules equal a hand count,
the arithmetic on them follows what the jobs run (epochs, d, the batch, a probe's test views),
and the command prints GPU-hours and peak memory for the shipped files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contract.methods import RotNetConfig
from contract.network import NetworkConfig
from orchestrator.cli.main import main
from orchestrator.estimate import estimate, rows
from orchestrator.sweep import prepare
from workers import costs

ROOT = Path(__file__).resolve().parents[1]
# alexnet_bn at 224 px: (output side, in channels, out channels, kernel) of conv1..conv5.
CONVS = ((55, 3, 96, 11), (27, 96, 256, 5), (13, 256, 384, 3), (13, 384, 384, 3), (13, 384, 256, 3))


def macs(side: int, c_in: int, c_out: int, k: int) -> int:
    return side * side * c_out * c_in * k * k


def test_trunk_forward_is_twice_the_macs_of_its_convolutions():
    assert costs.trunk_pass(NetworkConfig()).flops == 2 * sum(macs(*conv) for conv in CONVS)


def test_rotnet_step_is_forward_and_backward_of_four_rotations():
    """Per source sample: 4 rotations, each a forward and a backward (input and weight gradients:
    twice the forward) of trunk and head, but no input gradient for conv1 (its input is data).
    Mutations tried: `rotate_batch` returning the batch unrotated (x1, not x4) and the loss's
    backward left out of the counted step (x1, not x3) both fail here."""
    head = 9216 * 4096 + 4096 * 4096 + 4096 * 4  # pool5 (256 x 6 x 6) -> 4096 -> 4096 -> 4
    forward = 2 * (sum(macs(*conv) for conv in CONVS) + head)
    conv1_input_grad = 2 * macs(*CONVS[0])
    step = costs.pretrain(RotNetConfig(), NetworkConfig(), None)
    assert step.flops == 4 * (3 * forward - conv1_input_grad)


SPEC = """\
name: cost
grid:
  method:
    - {{name: rotnet, samples: {d}, epochs: {epochs}, batch_size: {batch}}}
    - {{name: deepcluster, samples: {d}, epochs: {epochs}, batch_size: {batch}, k: 8, pca_dim: 16}}
  images: [astronaut]
  augmentation: [full]
  layer: [conv1, conv5]
  probe_dataset: [cifar10]
  seed: [0]
network: {{width: 0.25, input_size: 64}}
probe: {{preset: asano2020, epochs: 2, train_samples: 100, test_samples: 100, test_crops: {crops}}}
"""


def job_estimates(write_spec, d=256, epochs=2, batch=32, crops="ten"):
    path = write_spec(SPEC.format(d=d, epochs=epochs, batch=batch, crops=crops))
    return {e.row: e for e in estimate(prepare(path).sweep)}


def test_pretraining_scales_linearly_with_epochs_and_samples(write_spec):
    """Doubling the epochs or d doubles every pre-training's samples and FLOPs (DeepCluster's
    per-epoch feature extraction and clustering included)."""
    base = job_estimates(write_spec)
    for changed in (job_estimates(write_spec, epochs=4), job_estimates(write_spec, d=512)):
        for method in ("rotnet", "deepcluster"):
            assert changed[method].samples == 2 * base[method].samples
            assert changed[method].flops == pytest.approx(2 * base[method].flops, rel=1e-12)


def test_peak_memory_grows_with_the_batch_by_the_saved_activations(write_spec):
    base, wider = job_estimates(write_spec, batch=32), job_estimates(write_spec, batch=64)
    saved = costs.pretrain(
        RotNetConfig(samples=256, epochs=2, batch_size=32),
        NetworkConfig(width=0.25, input_size=64),
        None,
    ).saved
    assert saved > 0
    assert wider["rotnet"].peak - base["rotnet"].peak == pytest.approx(32 * saved)


def test_a_probe_scores_every_test_view(write_spec):
    """Ten crops put each of the 100 test images through the trunk (to conv5) ten times."""
    ten, centre = job_estimates(write_spec, crops="ten"), job_estimates(write_spec, crops="center")
    trunk = costs.trunk_pass(NetworkConfig(width=0.25, input_size=64), ("conv1", "conv5")).flops
    probe = "linear_probe cifar10"
    assert ten[probe].flops - centre[probe].flops == pytest.approx(100 * 9 * trunk)
    assert ten[probe].samples == centre[probe].samples == 2 * 100 + 100


def test_rows_group_jobs_that_cost_the_same(write_spec):
    table = {
        r.name: r
        for r in rows(
            estimate(prepare(write_spec(SPEC.format(d=256, epochs=2, batch=32, crops="ten"))).sweep)
        )
    }
    assert set(table) == {
        "rotnet",
        "deepcluster",
        "linear_probe cifar10",
        "linear_probe cifar10, Sobel trunk",
    }
    assert all(r.jobs == 1 for r in table.values())


@pytest.mark.parametrize("file", ["examples/quickstart.yaml", "experiments.yaml"])
def test_plan_estimate_prints_gpu_hours_and_peak_memory(file, capsys):
    assert main(["plan", str(ROOT / file), "--estimate"]) == 0
    out = capsys.readouterr().out
    assert "GPU-h" in out and "peak GiB" in out and "sweep: " in out and " GPU-hours" in out
    # the assumptions are printed: both files compute in fp32, whose MFU is not measured yet
    assert "989 TFLOP/s per GPU x MFU 0.175" in out and "MFU assumed for fp32" in out


def test_the_mfu_is_the_measured_one_for_the_files_compute_setting(write_spec, monkeypatch, capsys):
    """bf16 is assumed at twice fp32's share of the bf16 peak until bench.gpu measures it; a
    measurement for the file's exact setting replaces the assumption and is named; --mfu wins."""
    from orchestrator import estimate as module

    path = write_spec(SPEC.format(d=256, epochs=2, batch=32, crops="ten") + "compute: {precision: bf16}\n")
    assert main(["plan", str(path), "--estimate"]) == 0
    assert "MFU 0.35 " in capsys.readouterr().out
    monkeypatch.setitem(module.MEASURED_MFU, "bf16 + channels_last", module.Measured(0.42, "NVIDIA H100", "2026-12-24"))
    assert main(["plan", str(path), "--estimate"]) == 0
    out = capsys.readouterr().out
    assert "MFU 0.42 " in out and "measured by bench.gpu for bf16 + channels_last on NVIDIA H100, 2026-12-24" in out
    assert main(["plan", str(path), "--estimate", "--mfu", "0.2", "--json"]) == 0
    est = json.loads(capsys.readouterr().out)["estimate"]
    assert (est["mfu"], est["mfu_source"]) == (0.2, "given")


def test_plan_json_totals_the_rows_at_the_given_rate(capsys):
    assert (
        main(
            [
                "plan",
                str(ROOT / "examples/quickstart.yaml"),
                "--estimate",
                "--json",
                "--gpu-tflops",
                "100",
                "--mfu",
                "0.5",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["pretrain_jobs"] == {"random": 3, "rotnet": 6, "supervised": 3}
    assert out["evaluation_jobs"] == {"linear_probe": 12}
    est = out["estimate"]
    assert (est["gpu_tflops"], est["mfu"]) == (100, 0.5)
    for row in est["rows"]:
        assert row["gpu_hours_per_job"] == pytest.approx(row["tflop_per_job"] / 50 / 3600)
    assert est["gpu_hours"]["total"] == pytest.approx(sum(r["gpu_hours"] for r in est["rows"]))


def test_plan_without_estimate_lists_jobs_by_kind(capsys):
    assert main(["plan", str(ROOT / "examples/quickstart.yaml")]) == 0
    out = capsys.readouterr().out
    assert "pretrain jobs by method: random 3, supervised 3, rotnet 6" in out and "GPU-h" not in out


def test_plan_refuses_a_rate_that_is_no_rate(capsys):
    assert main(["plan", str(ROOT / "examples/quickstart.yaml"), "--estimate", "--mfu", "1.5"]) == 2
    assert "--mfu 1.5" in capsys.readouterr().err


BUDGETED = """\
name: budgeted
grid:
  method: [random, {name: rotnet, samples: 256, epochs: 1, batch_size: 32}, {name: rotnet, samples: 64, epochs: 1}]
  images: [astronaut]
  augmentation: [full]
  layer: [conv1, conv5]
  probe_dataset: [fashion_mnist]
network: {width: 0.25, input_size: 64}
probe: {preset: fast, epochs: 1, train_samples: 100, test_samples: 100}
"""


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    from contract.datasets import DEFAULT_DATA_ROOTS

    if not Path(DEFAULT_DATA_ROOTS["fashion_mnist"]).is_dir():
        pytest.skip("needs Debian's dataset-fashion-mnist (make setup)")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def test_run_refuses_a_sweep_above_its_gpu_hour_limit_before_anything_starts(write_spec, sandbox, capsys):
    """Exit 2 with the estimate of what is left, the largest jobs first (the 256-sample RotNet,
    then the 64-sample one) and how to raise the limit; no Ray, no sweep in the store.
    Mutation tried: the largest jobs sorted smallest first: fails."""
    import ray
    from mlflow.tracking import MlflowClient

    from orchestrator.estimate import each, throughput
    from orchestrator.plan import plan
    from orchestrator.sweep import prepare

    path = write_spec(BUDGETED)
    prepared = prepare(path)
    todo = plan(prepared.sweep, set(), set())
    rate = throughput(prepared.spec.compute)
    total = sum(rate.hours(e.flops) for e in each([*todo.pretrain, *todo.evaluation]))
    assert main(["run", str(path), "--max-gpu-hours", f"{total / 2:.6g}"]) == 2
    err = capsys.readouterr().err  # after MLflow's own log lines (creating the store's tables)
    lines = err[err.index(f"{path}: max_gpu_hours: ") :].splitlines()
    assert lines[0].startswith(f"{path}: max_gpu_hours: the estimate of what is left to run is ")
    assert f"GPU-hours (6 jobs), above the limit of {total / 2:.6g}; nothing was started" in lines[0]
    assert "MFU 0.175 (assumed for fp32" in lines[1] and lines[2] == "  the largest jobs:"
    largest = lines[3:8]
    assert "rotnet#1 N1 astronaut full s0  [pretrain: rotnet#1]" in largest[0]
    assert "rotnet#2 N1 astronaut full s0  [pretrain: rotnet#2]" in largest[1]
    assert lines[-1].startswith("  to run it anyway, raise the limit: --max-gpu-hours 1 (or max_gpu_hours: 1")
    assert not ray.is_initialized()
    assert MlflowClient(f"sqlite:///{sandbox / 'mlflow.db'}").get_experiment_by_name("budgeted") is None


def test_the_files_limit_applies_and_the_option_wins(write_spec, sandbox, capsys):
    import argparse

    from orchestrator.cli.run import within_budget
    from orchestrator.errors import UserError
    from orchestrator.plan import plan
    from orchestrator.sweep import prepare

    path = write_spec(BUDGETED + "max_gpu_hours: 1e-12\n")
    assert main(["run", str(path)]) == 2
    assert "above the limit of 1e-12" in capsys.readouterr().err
    prepared = prepare(path)
    todo = plan(prepared.sweep, set(), set())
    within_budget(argparse.Namespace(file=str(path), max_gpu_hours=1.0), prepared, todo)  # the option wins
    with pytest.raises(UserError):
        within_budget(argparse.Namespace(file=str(path), max_gpu_hours=None), prepared, todo)
    assert main(["run", str(path), "--max-gpu-hours", "0"]) == 2
    assert "--max-gpu-hours 0: a number of GPU-hours above 0" in capsys.readouterr().err
