"""Reports from a real MLflow store filled by a small real sweep (two seeds, for std)."""

from __future__ import annotations

import csv
import json
import statistics

import numpy as np
import pytest
import ray
from mlflow.tracking import MlflowClient
from scipy import stats

from orchestrator import report, report_paired
from orchestrator.cli.main import main
from tests.conftest import FASHION_MNIST, TINY, module_sandbox

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist (make setup)"),
]

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def swept(tmp_path_factory, migrated_store_template):
    """A finished two-seed sweep: (folder, spec path, store uri)."""
    folder = tmp_path_factory.mktemp("report")
    two_seeds = TINY.replace("seed: [0]", "seed: [0, 1]").replace("conv1, conv2, conv3, conv4, conv5", "conv1, conv3")
    with module_sandbox(folder, migrated_store_template, two_seeds) as spec:
        assert main(["run", str(spec)]) == 0
    ray.shutdown()
    return folder, spec, f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture
def in_folder(swept, monkeypatch):
    monkeypatch.chdir(swept[0])
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return swept


def probe_runs(uri: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tiny").experiment_id
    return [r for r in client.search_runs([experiment], max_results=1000) if r.data.tags["monosweep.kind"] == "cell"]


def top1_by_seed(uri: str) -> dict[tuple[str, str], dict[int, float]]:
    """(row label, layer) -> seed -> top-1, from the probe runs' own params and metrics."""
    out: dict[tuple[str, str], dict[int, float]] = {}
    for r in probe_runs(uri):
        p = r.data.params
        label = " ".join(p[k] for k in ("method", "images", "augmentation") if k in p)
        out.setdefault((label, p["layer"]), {})[int(p["seed"])] = r.data.metrics["top1"]
    return out


def test_table_numbers_are_the_runs_metrics(in_folder):
    folder, spec, uri = in_folder
    out = folder / "out"
    assert main(["report", str(spec), "--format", "md,csv,latex,html", "--out", str(out)]) == 0
    expected: dict[tuple, list[float]] = {}
    for r in probe_runs(uri):
        p = r.data.params
        label = " ".join(p[k] for k in ("method", "images", "augmentation") if k in p)
        expected.setdefault((label, p["layer"]), []).append(r.data.metrics["top1"])
    rows = [row for row in csv.DictReader((out / "report.csv").open()) if row["view"] == "mean"]
    assert {(row["pre-training"]) for row in rows} == {"random", "rotnet N1 astronaut full", "rotnet N1 astronaut none"}
    assert sorted({row["column"] for row in rows}) == ["conv1", "conv3"] and len(rows) == 6
    for row in rows:
        assert (row["evaluation"], row["metric"], row["dataset"]) == ("linear_probe", "top1", "fashion_mnist")
        values = expected[(row["pre-training"], row["column"])]
        assert len(values) == 2 and row["n"] == "2"
        assert float(row["mean"]) == pytest.approx(statistics.mean(values), abs=1e-4)
        assert float(row["std"]) == pytest.approx(statistics.stdev(values), abs=1e-4)
    md = (out / "report.md").read_text()
    assert "| pre-training | conv1 | conv3 |" in md and "(n=2)" in md
    assert "top-1 minus random" in md  # the difference view is on by default
    assert r"\begin{tabular}" in (out / "report.latex").read_text()
    assert "<table>" in (out / "report.html").read_text()


def test_every_figure_is_a_png(in_folder):
    folder, spec, uri = in_folder
    out = folder / "figs"
    assert main(["report", str(spec), "--out", str(out)]) == 0
    for name in ("top1_per_layer.png", "augmentation_ablation.png"):
        assert (out / name).read_bytes()[:8] == PNG, name
    assert not (out / "top1_vs_n.png").exists()  # one N: a figure against N would be single dots
    filters = sorted(out.glob("runs/*/conv1_filters.png"))
    samples = sorted(out.glob("runs/*/mono_samples.png"))
    assert len(filters) == 6 and len(samples) == 4  # every pretrain run; only rotnet has samples
    assert all(p.read_bytes()[:8] == PNG for p in filters + samples)
    client = MlflowClient(uri)
    sweep = client.search_runs(
        [client.get_experiment_by_name("tiny").experiment_id], "tags.`monosweep.kind` = 'sweep'"
    )[0]
    attached = {a.path for a in client.list_artifacts(sweep.info.run_id, "report")}
    assert {"report/report.md", "report/top1_per_layer.png"} <= attached


def test_the_html_page_is_self_contained_and_mlflow_holds_the_tables(in_folder):
    folder, spec, uri = in_folder
    out = folder / "page"
    for _ in range(2):  # a second report replaces the tables, it does not append to them
        assert main(["report", str(spec), "--format", "html", "--view", "mean", "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tiny").experiment_id
    sweep = client.search_runs([experiment], "tags.`monosweep.kind` = 'sweep'")[0]
    assert page.startswith("<!DOCTYPE html>") and "<h1>tiny</h1>" in page
    assert page.count('<img src="data:image/png;base64,iVBORw0KGgo') >= 3  # the figures and each run's pictures, inline
    assert "src=\"http" not in page and "<script" not in page  # nothing fetched, nothing run
    table = report.all_tables(report.load(uri, "tiny"))[0]
    assert f"<td>{table.rows['random']['conv1'].text()}</td>" in page  # the table's values
    assert "finished 12" in page and "grid.augmentation" in page  # cell states, settings
    runs_link = f"http://127.0.0.1:5000/#/experiments/{experiment}/runs?workflowType=machine_learning"
    sweep_link = f"http://127.0.0.1:5000/#/experiments/{experiment}/runs/{sweep.info.run_id}?workflowType=machine_learning"
    assert f'href="{runs_link}"' in page and f'href="{sweep_link}">{sweep.info.run_id}</a>' in page
    for r in probe_runs(uri):
        assert f">{r.info.run_id}</a>" in page

    name = "report/tables/linear_probe_top1_fashion_mnist_mean.json"
    assert name in {a.path for a in client.list_artifacts(sweep.info.run_id, "report/tables")}
    logged = json.loads(client.get_run(sweep.info.run_id).data.tags["mlflow.loggedArtifacts"])
    assert {"path": name, "type": "table"} in logged  # what makes the UI show it as a table
    logged_table = client.load_table(experiment, name, run_ids=[sweep.info.run_id])
    assert list(logged_table.columns) == ["pre-training", "conv1", "conv3"]
    assert list(logged_table["pre-training"]) == list(table.rows)  # once each, after two reports
    assert list(logged_table["conv1"]) == [by_column["conv1"].text() for by_column in table.rows.values()]


def test_missing_and_failed_cells_are_shown(in_folder):
    folder, spec, uri = in_folder
    rec = report.load(uri, "tiny")
    victim = next(c for c in rec.cells if c.method == "rotnet" and c.layer == "conv3" and c.augmentation == "none")
    del rec.cell_runs[victim.key]  # as if that cell never ran
    failed = next(c for c in rec.cells if c.method == "random" and c.layer == "conv1" and c.seed == 1)
    rec.cell_runs[failed.key] = rec.cell_runs[failed.key].__class__(
        **{**rec.cell_runs[failed.key].__dict__, "status": "FAILED"}
    )
    table = report.all_tables(rec)[0]
    assert table.rows["rotnet N1 astronaut none"]["conv3"].text().endswith("(n=1)")
    assert table.rows["random"]["conv1"].states == ["failed"]
    text = report.render(table, "md")
    assert "random" in text and "rotnet N1 astronaut none" in text


def test_compare_two_sweeps(in_folder, capsys):
    folder, spec, uri = in_folder
    assert main(["report", str(spec), "--compare", str(spec), "--out", str(folder / "cmp"), "--no-log"]) == 0
    out = capsys.readouterr().out
    assert "(tiny / tiny)" in out and " / " in out


def test_unknown_format_is_rejected(in_folder, capsys):
    folder, spec, uri = in_folder
    assert main(["report", str(spec), "--format", "pdf"]) == 2
    assert "'pdf' not allowed" in capsys.readouterr().err


def test_the_paired_view_is_the_t_interval_of_the_runs_differences_seed_by_seed(in_folder, capsys):
    """`report --view paired`: each row's mean difference to random and its 95% interval are
    numpy's and scipy's over the runs' seeds. Mutations tried, each fails here: the normal
    quantile 1.96 instead of t(0.975, 1); subtracting random's mean instead of its same-seed value."""
    folder, spec, uri = in_folder
    out = folder / "paired"
    assert main(["report", str(spec), "--format", "md,csv", "--view", "paired", "--out", str(out), "--no-log"]) == 0
    top1 = top1_by_seed(uri)
    rows = list(csv.DictReader((out / "report.csv").open()))
    assert {row["view"] for row in rows} == {"paired"} and len(rows) == 6
    md = (out / "report.md").read_text()
    assert "top-1 minus random seed by seed (mean [95% CI], * where it excludes 0)" in md
    assert md.strip() in capsys.readouterr().out  # the table printed is the file's
    for row in rows:
        if row["pre-training"] == "random":
            assert row["state"] == "reference" and row["n"] == "0"
            continue
        own, random = top1[(row["pre-training"], row["column"])], top1[("random", row["column"])]
        d = np.array([own[seed] - random[seed] for seed in sorted(own)])
        half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        low, high = d.mean() - half, d.mean() + half
        assert row["n"] == "2" and float(row["mean"]) == pytest.approx(d.mean(), abs=1e-4)
        assert (float(row["ci95_low"]), float(row["ci95_high"])) == pytest.approx((low, high), abs=1e-4)
        mark = " *" if low > 0 or high < 0 else ""
        assert f" {d.mean():+.2f} [{low:+.2f}, {high:+.2f}]{mark} (n=2) " in md


def test_the_paired_view_pairs_only_seeds_both_rows_finished(in_folder):
    """Random's seed-0 conv1 run as if it never ran: rotnet's conv1 pairs on seed 1 alone and
    says it has no interval. Mutation tried, fails here: pairing by position (rotnet's seed 0
    against random's seed 1)."""
    folder, spec, uri = in_folder
    rec = report.load(uri, "tiny")
    victim = next(c for c in rec.cells if c.method == "random" and c.layer == "conv1" and c.seed == 0)
    del rec.cell_runs[victim.key]
    view = report_paired.paired(report.all_tables(rec)[0])
    top1 = top1_by_seed(uri)
    for label in ("rotnet N1 astronaut full", "rotnet N1 astronaut none"):
        entry = view.rows[label]["conv1"]
        expected = top1[(label, "conv1")][1] - top1[("random", "conv1")][1]
        assert entry.values == [pytest.approx(expected)] and entry.states == ["unpaired"]
        assert entry.text() == f"{expected:+.2f} (n=1, no CI)"
        assert view.rows[label]["conv3"].ci is not None  # its other column pairs both seeds
