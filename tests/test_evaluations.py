"""Finetuning and style transfer as sweep evaluations, through real Ray and real MLflow:
recorded next to the linear probes, under the pretrain run they read, and reported."""

from __future__ import annotations

import csv

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli.main import main
from tests.conftest import FASHION_MNIST, module_sandbox

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist (make setup)"),
]

SPEC = """\
name: evaluations
grid:
  method: [random, {name: rotnet, samples: 128, epochs: 1, batch_size: 32}]
  images: [astronaut]
  augmentation: [full]
  evaluation: [linear_probe, {name: finetune_frozen, frozen: [0, 2]}, style_transfer]
  layer: [conv1, conv3]
  probe_dataset: [fashion_mnist]
network: {width: 0.25, input_size: 64}
probe: {preset: fast, epochs: 2, train_samples: 500, test_samples: 500}
finetune: {preset: fast, epochs: 1, train_samples: 400, test_samples: 300}
style: {size: 64, steps: 8}
retries: 0
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory, migrated_store_template):
    """(folder, spec path, client, runs by kind) of the finished sweep."""
    folder = tmp_path_factory.mktemp("evaluations")
    with module_sandbox(folder, migrated_store_template, SPEC) as path:
        assert main(["run", str(path)]) == 0
    import ray

    ray.shutdown()
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("evaluations").experiment_id
    runs = client.search_runs([experiment], max_results=1000)
    kinds: dict[str, list] = {}
    for r in runs:
        kind = r.data.tags["monosweep.kind"]
        kinds.setdefault(r.data.params.get("evaluation", kind), []).append(r)
    return folder, path, client, kinds


def test_every_evaluation_cell_has_one_finished_run_under_its_trunk(swept):
    _, _, _, kinds = swept
    assert {k: len(v) for k, v in kinds.items()} == {
        "sweep": 1, "pretrain": 2, "linear_probe": 4, "finetune_frozen": 4, "style_transfer": 4,
    }
    trunks = {r.info.run_id: r.data.tags["monosweep.key"] for r in kinds["pretrain"]}
    for kind in ("linear_probe", "finetune_frozen", "style_transfer"):
        for r in kinds[kind]:
            assert r.info.status == "FINISHED"
            assert trunks[r.data.tags["mlflow.parentRunId"]] == r.data.tags["monosweep.pretrain_key"]
    keys = [
        r.data.tags["monosweep.key"] for k in ("linear_probe", "finetune_frozen", "style_transfer") for r in kinds[k]
    ]
    assert len(set(keys)) == len(keys) == 12


def test_finetuning_runs_record_their_protocol_and_scores(swept):
    _, _, _, kinds = swept
    by_k: dict[str, list[float]] = {}
    for r in kinds["finetune_frozen"]:
        p, m = r.data.params, r.data.metrics
        assert p["finetune.preset"] == "fast" and p["finetune.reinit"] == "true"
        assert p["frozen_layers"] == {"0": "none", "2": "conv1,conv2"}[p["frozen"]]
        assert 0 < m["top1"] <= m["top5"] <= 100
        by_k.setdefault(p["frozen"], []).append(m["top1"])
    # k = 0 re-initialises every conv layer: supervised from scratch, the same for both trunks.
    assert by_k["0"][0] == by_k["0"][1]


def test_style_runs_keep_their_images_and_lower_the_style_loss(swept):
    _, _, client, kinds = swept
    pairs = set()
    for r in kinds["style_transfer"]:
        m = r.data.metrics
        assert m["style_loss"] < m["style_loss_start"]
        names = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"stylised.png", "content.png", "style.png", "config.json"} <= names
        pairs.add((r.data.params["content"], r.data.params["style"]))
    assert pairs == {("astronaut", "hubble"), ("astronaut", "ihc")}


def test_report_has_the_finetuning_table_and_the_style_figure(swept, monkeypatch, capsys):
    folder, path, _, kinds = swept
    monkeypatch.chdir(folder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = folder / "report"
    assert main(["report", str(path), "--out", str(out), "--view", "mean"]) == 0
    text = (out / "report.md").read_text()
    assert "after finetuning with conv1..convk frozen" in text and "| pre-training | k=0 | k=2 |" in text
    assert "style loss of style transfer" in text and "| pre-training | astronaut+hubble | astronaut+ihc |" in text
    for name in ("style_transfer.png", "finetune_top1.png", "top1_per_layer.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    rows = [row for row in csv.DictReader((out / "report.csv").open()) if row["column"] == "k=2"]
    expected = {
        ("random" if r.data.params["method"] == "random" else "rotnet N1 astronaut full"): r.data.metrics["top1"]
        for r in kinds["finetune_frozen"] if r.data.params["frozen"] == "2"
    }
    assert {row["evaluation"] for row in rows} == {"finetune_frozen"}
    assert {row["pre-training"]: float(row["mean"]) for row in rows} == pytest.approx(expected, abs=1e-4)
    styles = [row for row in csv.DictReader((out / "report.csv").open()) if row["evaluation"] == "style_transfer"]
    assert {row["metric"] for row in styles} == {"style_loss", "content_loss"} and len(styles) == 8


def test_a_rerun_runs_nothing(swept, monkeypatch, capsys):
    folder, path, _, _ = swept
    monkeypatch.chdir(folder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["run", str(path)]) == 0
    assert "nothing to run" in capsys.readouterr().out
