"""`monosweep smoke`: one job per job shape, capped, under smoke keys (pure, on the shipped paper
grid); and end to end on a tiny file: real Ray, a real SQLite store, real torch (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator import estimate, smoke
from orchestrator.cli.main import main
from orchestrator.record.schema import KEY, KIND, PRETRAIN
from orchestrator.sweep import prepare
from tests import fake_datasets

ROOT = Path(__file__).resolve().parents[1]


def test_one_capped_job_per_shape_of_the_paper_grid_under_keys_no_real_job_has():
    # the paper images: pinned
    sweep = prepare(ROOT / "experiments.yaml", reads_images=False, data_roots={"imagenet": "/fake/imagenet"}).sweep
    chosen = smoke.shapes(sweep, 3)
    rows = {estimate.row_name(j) for j in [*sweep.pretrain_jobs.values(), *sweep.evaluation_jobs.values()]}
    assert sorted(s.row for s in chosen) == sorted(rows)  # every shape once: plan --estimate's rows
    real = {*sweep.pretrain_jobs, *sweep.evaluation_jobs, *(c.key for c in sweep.cells)}
    trunks = {s.job.key for s in chosen if s.stage == "pretrain"}
    for s in chosen:
        assert s.job.max_steps == 3 and s.job.key.startswith(smoke.PREFIX) and s.job.key not in real
        if s.stage == "evaluation":
            assert s.job.pretrain_key in trunks  # each evaluation reads a trunk the smoke run trains
            assert all(c.key.startswith(smoke.PREFIX) for c in s.job.cells)
            if getattr(s.job, "dataset", None) == "imagenet":
                assert s.job.data_root == "/fake/imagenet"
    (deepcluster,) = [s for s in chosen if s.row == "deepcluster"]
    assert deepcluster.clustered == deepcluster.job.method.k == 10_000  # not all 1,281,167 samples
    assert deepcluster.job.method.cluster_samples == 10_000 and deepcluster.job.method.samples == 1_281_167


SPEC = """\
name: tiny
grid:
  method: [random, {name: rotnet, samples: 160, epochs: 1, batch_size: 16}]
  images: [astronaut]
  augmentation: [full]
  layer: [conv1, conv5]
  probe_dataset: [cifar10]
network: {width: 0.25, input_size: 64}
probe: {preset: fast}
tracking_uri: sqlite:///real.db
data_roots: {cifar10: /nowhere/cifar10}
"""


@pytest.mark.slow
def test_smoke_runs_each_shape_for_k_steps_into_its_own_store(write_spec, sweep_sandbox, monkeypatch, capsys):
    # uncapped, rotnet would take 160 / 16 = 10 steps and the probe two epochs of 1000 images
    path = write_spec(SPEC)
    cifar = fake_datasets.cifar(sweep_sandbox / "cifar10", 10, train=1000, test=300)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{sweep_sandbox / 'env.db'}")  # the real store, too
    uri = f"sqlite:///{sweep_sandbox / 'smoke.db'}"
    code = main(["smoke", str(path), "--steps", "3", "--data-root", f"cifar10={cifar}", "--tracking-uri", uri])
    out = capsys.readouterr().out
    assert code == 0, out
    table = out.split("\n\n")[1].splitlines()
    assert table[0].split()[:2] == ["job", "shape"]
    assert [line.split()[0] for line in table[1:4]] == ["random", "rotnet", "linear_probe"]
    assert "trains nothing" in out  # random's footnote
    assert table[3].split()[-1] in ("data", "model")  # the probe logs both halves of its steps
    assert not (sweep_sandbox / "real.db").exists() and not (sweep_sandbox / "env.db").exists()

    c = MlflowClient(uri)
    experiment = c.get_experiment_by_name("smoke/tiny")
    assert experiment.tags[smoke.SMOKE] == "3"
    runs = c.search_runs([experiment.experiment_id])
    assert len(runs) == 1 + 2 + 2  # the sweep run, two pretrain runs, a cell run per layer
    assert all(r.data.tags[smoke.SMOKE] == "3" and r.info.status == "FINISHED" for r in runs)
    assert all(r.data.tags[KEY].startswith(smoke.PREFIX) for r in runs if KEY in r.data.tags)
    (rotnet,) = [r for r in runs if r.data.tags[KIND] == PRETRAIN and r.data.params.get("method.name") == "rotnet"]
    assert [m.step for m in c.get_metric_history(rotnet.info.run_id, "pretext_loss")] == [3]  # K steps, no more
    assert rotnet.data.metrics["peak_host_memory_mb"] > 0
    probes = [r for r in runs if r.data.params.get("layer") in ("conv1", "conv5")]
    assert {r.data.params["train_size"] for r in probes} == {str(3 * 256)}  # K batches of the fast preset
    assert all(r.data.metrics["samples_per_s"] > 0 for r in probes)
