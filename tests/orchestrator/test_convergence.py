"""report.convergence: the pre-training rows whose runs say whether they converged."""

from __future__ import annotations

from orchestrator import report
from orchestrator.grid import Cell
from orchestrator.record.schema import RunView


def run(key: str, status: str = "FINISHED", **metrics: float) -> RunView:
    return RunView(key, key, key, status, {}, metrics, {}, None, None)


def cell(pretrain_key: str, method: str, seed: int, layer: str) -> Cell:
    return Cell(key=f"{pretrain_key}-{layer}", label="", pretrain_key=pretrain_key, job_key="j", method=method, n=10,
                images="fashion_mnist 10", augmentation="asano2020", layer=layer, probe_dataset="fashion_mnist",
                seed=seed)


def test_converged_seeds_are_counted_per_row_once_per_pretraining():
    """Two layers' cells share a pretraining: it counts once. A failed run and a method that
    records no `converged` (RotNet) give no line."""
    cells = [cell(f"b{seed}", "bigan", seed, layer) for seed in range(3) for layer in ("conv1", "conv2")]
    cells += [cell("r0", "rotnet", 0, "conv1"), cell("b3", "bigan", 3, "conv1")]
    pretrain = {
        "b0": run("b0", converged=1.0, discriminator_accuracy_end=0.81),
        "b1": run("b1", converged=0.0, discriminator_accuracy_end=0.99),
        "b2": run("b2", converged=1.0, discriminator_accuracy_end=0.7),
        "b3": run("b3", "FAILED", converged=0.0, discriminator_accuracy_end=1.0),
        "r0": run("r0"),
    }
    rec = report.SweepRuns("s", "sqlite://", "1", "sweep", cells, {}, pretrain)
    assert report.convergence(rec) == [
        "bigan fashion_mnist 10 asano2020: converged in 2/3 seeds (discriminator accuracy at the end 0.81, 0.99, 0.70)"
    ]
