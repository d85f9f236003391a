"""`monosweep report FILE --view findings` on a recorded store: a real MLflow store written
through the record layer (the sweep run with its cells.json, a run per trunk and per cell, one
cell FAILED), values drawn from known distributions; every number of the view checked against
scipy and statsmodels called on the values directly: the additive model (a missing cell
included), TOST paired and pooled, the paired t with a missing seed, Holm over the file's five
comparisons. No training: the values are the test's.

Mutations tried, each fails here: dropping the Holm step; swapping TOST's bounds; unpairing
the seeds (by position; and the additive model without its seed factor)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from mlflow.tracking import MlflowClient
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from orchestrator.cli.main import main
from orchestrator.evaluations import EVALUATIONS
from orchestrator.record import runs
from orchestrator.record.schema import CELL, PRETRAIN
from orchestrator.sweep import prepare
from tests.conftest import TINY, module_sandbox

FULL, NONE = "rotnet N1 astronaut full", "rotnet N1 astronaut none"
SEEDS_AND_LAYERS = TINY.replace("seed: [0]", "seed: [0, 1, 2, 3]").replace("conv2, conv3, conv4, conv5", "conv3")
SPEC = SEEDS_AND_LAYERS + f"""\
findings:
  - {{name: gain, claim: RotNet beats random, a: {FULL}, b: random, at: [conv1, conv3], kind: greater}}
  - {{name: same, claim: augmentation changes nothing, a: {NONE}, b: {FULL}, at: [conv3], kind: equivalent,
      margin: 1.0, variance: paired}}
  - {{name: near, claim: none is random within 2 points, a: {NONE}, b: random, at: [conv1], kind: equivalent,
      margin: 2.0}}
  - {{name: drop, claim: none is below random, a: {NONE}, b: random, at: [conv3], kind: less, variance: paired}}
"""
MEANS = {("random", "conv1"): 80.0, ("random", "conv3"): 75.0, (FULL, "conv1"): 82.5, (FULL, "conv3"): 77.0,
         (NONE, "conv1"): 80.3, (NONE, "conv3"): 76.8}
FAILED = (NONE, "conv3", 2)  # this cell's run failed: its seed is missing from that row and column


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, migrated_store_template):
    """(folder, spec path, values): a store holding the file's cells, seed by seed."""
    folder = tmp_path_factory.mktemp("findings")
    with module_sandbox(folder, migrated_store_template, SPEC) as path:
        prepared = prepare(path)
        rng = np.random.default_rng(2025)
        block = rng.normal(0, 1.5, 4)  # a seed's effect, shared by the rows
        values = {(row, col, s): round(mean + block[s] + rng.normal(0, 0.4), 2)
                  for (row, col), mean in MEANS.items() for s in range(4)}
        uri = prepared.uri
        tracking = runs.open_sweep(prepared.spec.name, uri, {
            "spec.json": prepared.spec.model_dump_json(),
            "cells.json": json.dumps([c.model_dump() for c in prepared.sweep.cells]),
        })
        parents = {}
        for job in prepared.sweep.pretrain_jobs.values():
            parents[job.key], _ = runs.start_run(tracking, PRETRAIN, job.key, job.label, tracking.sweep_run_id, {}, {})
            runs.end_run(uri, parents[job.key])
        client = MlflowClient(uri)
        for cell in prepared.sweep.cells:
            place = (EVALUATIONS[cell.evaluation].row(cell), cell.layer, cell.seed)
            run_id, _ = runs.start_run(tracking, CELL, cell.key, cell.label, parents[cell.pretrain_key],
                                       cell.coordinates(), {})
            if place == FAILED:
                runs.end_run(uri, run_id, RuntimeError("the probe diverged"))
                del values[place]
                continue
            client.log_metric(run_id, "top1", values[place])
            runs.end_run(uri, run_id)
        runs.close_sweep(tracking, "FINISHED")
    return folder, path, values


def column(values: dict, layer: str) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for (row, col, s), v in values.items():
        if col == layer:
            out.setdefault(row, {})[s] = v
    return out


def ols(values: dict, layer: str):
    frame = pd.DataFrame([(r, s, v) for r, by_seed in column(values, layer).items() for s, v in by_seed.items()],
                         columns=["row", "seed", "value"])
    return smf.ols("value ~ C(row) + C(seed)", frame).fit()


def contrast(fit, a: str, b: str) -> np.ndarray:
    weights = np.zeros(len(fit.params))
    for row, sign in ((a, 1), (b, -1)):
        name = f"C(row)[T.{row}]"
        if name in fit.model.exog_names:
            weights[fit.model.exog_names.index(name)] += sign
    return weights


def paired(values: dict, a: str, b: str, layer: str) -> tuple[np.ndarray, np.ndarray]:
    by = column(values, layer)
    common = sorted(by[a].keys() & by[b].keys())
    return np.array([by[a][s] for s in common]), np.array([by[b][s] for s in common])


def expected(values: dict) -> dict[tuple[str, str], dict]:
    """(finding, column) -> p, estimate, df, seeds, from scipy and statsmodels directly."""
    out = {}
    for layer in ("conv1", "conv3"):  # gain: the additive model of each column
        fit = ols(values, layer)
        test = fit.t_test(contrast(fit, FULL, "random"))
        out["gain", layer] = {"p": float(test.pvalue), "estimate": float(np.squeeze(test.effect)), "df": fit.df_resid,
                              "seeds": 4, "interval": lambda level, t=test: np.squeeze(t.conf_int(alpha=1 - level))}
    x, y = paired(values, NONE, FULL, "conv3")  # same: TOST over the seeds both finished
    p_in, (t1, _, df), (t2, _, _) = ttost_paired(x, y, -1.0, 1.0)
    out["same", "conv3"] = {"p": min(p_in, stats.t.cdf(t1, df), stats.t.sf(t2, df)), "estimate": np.mean(x - y),
                            "df": df, "seeds": 3, "p_inside": p_in,
                            "interval": lambda level, x=x, y=y: stats.ttest_rel(x, y).confidence_interval(level)}
    fit = ols(values, "conv1")  # near: TOST on the additive model's contrast
    weights = contrast(fit, NONE, "random")
    low, high = (float(np.squeeze(fit.t_test((weights, [q])).tvalue)) for q in (-2.0, 2.0))
    p_in = max(stats.t.sf(low, fit.df_resid), stats.t.cdf(high, fit.df_resid))
    test = fit.t_test(weights)
    out["near", "conv1"] = {"p": min(p_in, stats.t.cdf(low, fit.df_resid), stats.t.sf(high, fit.df_resid)),
                            "estimate": float(np.squeeze(test.effect)), "df": fit.df_resid, "seeds": 4,
                            "p_inside": p_in,
                            "interval": lambda level, t=test: np.squeeze(t.conf_int(alpha=1 - level))}
    x, y = paired(values, NONE, "random", "conv3")  # drop: the paired t, seed 2 missing
    test = stats.ttest_rel(x, y)
    out["drop", "conv3"] = {"p": test.pvalue, "estimate": np.mean(x - y), "df": test.df, "seeds": 3,
                            "interval": lambda level, t=test: t.confidence_interval(level)}
    return out


def test_every_number_of_the_findings_view_is_scipy_and_statsmodels(recorded, monkeypatch, capsys):
    folder, path, values = recorded
    monkeypatch.chdir(folder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = folder / "out"
    assert main(["report", str(path), "--view", "findings", "--format", "md,csv,latex,html", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = list(csv.DictReader((out / "findings.csv").open()))
    want = expected(values)
    assert [(r["finding"], r["column_a"]) for r in rows] == list(want)
    holm = multipletests([want[k]["p"] for k in want], method="holm")[1]
    for row, (key, w), p_adjusted in zip(rows, want.items(), holm, strict=True):
        assert float(row["p"]) == pytest.approx(w["p"], rel=1e-6), key
        assert float(row["p_adjusted"]) == pytest.approx(p_adjusted, rel=1e-6), key
        assert float(row["estimate"]) == pytest.approx(w["estimate"], abs=1e-9), key
        assert float(row["df"]) == pytest.approx(w["df"]) and int(row["seeds"]) == w["seeds"], key
        level = 0.05 * w["p"] / p_adjusted
        equivalent = row["kind"] == "equivalent"
        interval = w["interval"](1 - 2 * level if equivalent else 1 - level)
        assert (float(row["low"]), float(row["high"])) == pytest.approx(tuple(interval), rel=1e-6), key
        decided = p_adjusted < 0.05
        if not decided:
            verdict = "undecided"
        elif equivalent:
            verdict = "held" if w["p_inside"] == pytest.approx(w["p"]) else "contradicted"
        else:
            verdict = "held" if (w["estimate"] > 0) == (row["kind"] == "greater") else "contradicted"
        assert row["verdict"] == verdict, key
        assert row["variance"] == ("paired" if key[0] in ("same", "drop") else "pooled"), key
    verdicts = {(r["finding"], r["column_a"]): r["verdict"] for r in rows}
    assert verdicts["gain", "conv1"] == "held"  # the designed effect of 2.5 points is found
    assert "Holm over the 5 comparisons (finding, column) this file declares, alpha = 0.05" in printed
    assert "| gain | RotNet beats random | rotnet N1 astronaut full - random > 0 | conv1 |" in printed
    # an equivalence's |a - b| < m keeps its pipes out of the markdown table's columns
    lines = printed.splitlines()
    columns = lambda line: len(re.split(r"(?<!\\)\|", line))  # noqa: E731
    assert columns(next(li for li in lines if li.startswith("| same |"))) == columns(
        next(li for li in lines if li.startswith("| finding |"))
    )
    for fmt in ("md", "latex", "html"):
        assert "augmentation changes nothing" in (out / f"report.{fmt}").read_text()
    html = (out / "report.html").read_text()
    assert html.index("<h2>Findings</h2>") < html.index("<h2>Tables</h2>")
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    sweep_run = next(r for r in client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
                     if r.data.tags["monosweep.kind"] == "sweep")
    (folder / "fetched").mkdir()
    fetched = client.download_artifacts(sweep_run.info.run_id, "report/tables/findings.json", str(folder / "fetched"))
    table = json.loads(Path(fetched).read_text())  # MLflow's table: pandas' split JSON
    assert table["columns"][:4] == ["finding", "claim", "comparison", "column"] and len(table["data"]) == 5


def test_status_shows_each_finding(recorded, monkeypatch, capsys):
    folder, path, _ = recorded
    monkeypatch.chdir(folder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["status", str(path)]) == 0
    out = capsys.readouterr().out
    assert ("findings: one look, at the seeds the file lists; 1 (row, seed) pairs not finished: verdicts on the "
            "seeds finished") in out  # rotnet none's seed 2: its conv3 cell failed
    assert "  gain conv1: held, 4 seeds" in out and "  drop conv3: contradicted, 3 seeds" in out
    assert "this round" not in out
    assert main(["status", str(path), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["findings"]
    assert [c["finding"] for c in found["comparisons"]] == ["gain", "gain", "same", "near", "drop"]
    assert not found["complete"] and found["looks"] == 1 and found["comparisons"][4]["seeds"] == 3


def test_a_file_without_findings_has_no_findings_view(recorded, write_spec, monkeypatch, capsys):
    folder, _, _ = recorded
    monkeypatch.chdir(folder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    plain = folder / "plain.yaml"
    plain.write_text(SPEC.split("findings:")[0])
    assert main(["report", str(plain), "--view", "findings", "--no-log"]) == 2
    assert "declares no `findings`" in capsys.readouterr().err
