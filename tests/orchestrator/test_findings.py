"""Findings declared in the experiment file: checked against the expanded grid before anything
runs (file:line, the value, what is allowed), resolved to one comparison per (finding, column);
the seed range and the A/A twin's seed stream."""

from __future__ import annotations

import pytest

from contract.methods import stream_seed
from orchestrator.cli.main import main
from orchestrator.findings import resolve
from orchestrator.sweep import prepare
from tests.conftest import TINY

FINDINGS = """\
findings:
  - name: deep_gain
    claim: RotNet on one photo beats a random network on conv3 and conv5
    a: rotnet N1 astronaut full
    b: random
    at: [conv3, conv5]
    kind: greater
  - name: augmentation_free
    claim: full augmentation and none give the same conv1
    a: rotnet N1 astronaut full
    b: rotnet N1 astronaut none
    at: [conv1]
    kind: equivalent
    margin: 0.5
"""
SPEC = TINY + FINDINGS


def line_of(text: str, words: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if words in line)


def test_findings_resolve_to_one_comparison_per_column(write_spec):
    prepared = prepare(write_spec(SPEC))
    comparisons, problems = resolve(prepared.spec.findings, prepared.sweep.cells)
    assert not problems
    assert [(c.finding.name, c.column, c.a, c.b, c.table) for c in comparisons] == [
        ("deep_gain", "conv3", "rotnet N1 astronaut full", "random", ("linear_probe", "top1", "fashion_mnist")),
        ("deep_gain", "conv5", "rotnet N1 astronaut full", "random", ("linear_probe", "top1", "fashion_mnist")),
        ("augmentation_free", "conv1", "rotnet N1 astronaut full", "rotnet N1 astronaut none",
         ("linear_probe", "top1", "fashion_mnist")),
    ]
    assert all(c.pooled for c in comparisons)


def test_two_columns_of_a_table_are_a_paired_comparison(write_spec):
    text = (TINY.replace("  layer:", "  evaluation: [linear_probe, {name: finetune_frozen, frozen: [0, 2]}]\n  layer:")
            + "findings:\n  - {name: frozen, claim: frozen conv1-2 cost nothing, a: rotnet N1 astronaut full, "
              "a_column: k=2, b: random, b_column: k=0, kind: equivalent, margin: 1}\n")
    prepared = prepare(write_spec(text))
    (c,) = resolve(prepared.spec.findings, prepared.sweep.cells)[0]
    assert (c.table[0], c.column, c.a, c.b, c.pooled) == ("finetune_frozen", "k=2 - k=0", "rotnet N1 astronaut full",
                                                          "random", False)


BAD = {  # (replace this, with that) in SPEC -> the line holding which words, and words of the error
    "unknown row": ("b: random\n", "b: randon\n", "b: randon",
                    ["findings[0].b", "'randon' is not a row of the linear_probe table", "did you mean 'random'",
                     "rows: random, rotnet N1 astronaut full, rotnet N1 astronaut none"]),
    "unknown column": ("at: [conv1]", "at: [conv6]", "at: [conv6]",
                       ["findings[1].at", "'conv6' is not a column here", "conv1, conv2, conv3, conv4, conv5"]),
    "unknown kind": ("kind: greater", "kind: bigger", "kind: bigger",
                     ["findings[0].kind", "'bigger' is not one of greater, less, equivalent"]),
    "missing margin": ("    margin: 0.5\n", "", "- name: augmentation_free",
                       ["findings[1]", "an `equivalent` finding needs a `margin`"]),
    "a margin below zero": ("    kind: greater\n", "    kind: greater\n    margin: -1\n", "margin: -1",
                            ["findings[0].margin", "greater than 0"]),
    "no columns": ("    at: [conv3, conv5]\n", "", "- name: deep_gain", ["findings[0]", "give `at`"]),
    "unknown dataset": ("    kind: greater\n", "    kind: greater\n    dataset: cifar10\n", "dataset: cifar10",
                        ["findings[0].dataset", "'cifar10'", "run on fashion_mnist"]),
    "a seed range without findings": ("seed: [0]", "seed: {min: 3, max: 5}", "seed:",
                                      ["grid.seed", "declare `findings`"]),
    "a seed range below two": ("seed: [0]", "seed: {min: 1, max: 5}", "seed:",
                               ["grid.seed.min", "greater than or equal to 2"]),
    "finding named twice": ("name: augmentation_free", "name: deep_gain", "- name: deep_gain",
                            ["findings", "listed twice"]),
}


@pytest.mark.parametrize("case", BAD)
def test_validate_rejects_a_bad_finding_with_its_line(case, write_spec, tmp_path, capsys, monkeypatch):
    old, new, at, words = BAD[case]
    text = SPEC.replace(old, new, 1)
    if case == "a seed range without findings":
        text = TINY.replace(old, new, 1)
    path = write_spec(text)
    monkeypatch.chdir(tmp_path)
    assert main(["validate", str(path)]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith(f"{path}:{line_of(text, at)}: "), err
    for word in words:
        assert word in err, (word, err)
    assert not (tmp_path / "mlflow.db").exists()


def test_validate_counts_findings_and_a_seed_range(write_spec, capsys):
    path = write_spec(SPEC.replace("seed: [0]", "seed: {min: 3, max: 5}"))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    # 3 rows: at most 5 seeds each (all are compared), 15 cells a seed; at the fewest 3 seeds
    assert "75 cells, 15 pretrain jobs, 15 evaluation jobs at the most seeds" in out
    assert "findings: 2, 3 comparisons (finding, column); seeds until decided: 45 cells at the fewest seeds" in out


def test_report_help_lists_the_findings_view(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    out = capsys.readouterr().out
    assert "findings" in out and "paired" in out


def test_a_seed_stream_is_an_independent_twin_with_keys_of_its_own(write_spec):
    twin = TINY.replace("method: [random,", "method: [random, {name: random, seed_stream: 1},").replace(
        "seed: [0]", "seed: [0, 1]")
    prepared = prepare(write_spec(twin))
    trunks = {job.coordinates["method"]: job for job in prepared.sweep.pretrain_jobs.values()
              if job.coordinates["seed"] == 1}
    assert set(trunks) >= {"random#1", "random#2"}
    assert trunks["random#1"].seed == 1 and trunks["random#2"].seed == stream_seed(1, 1)
    assert trunks["random#2"].seed >= 2**31 and stream_seed(0, 1) != stream_seed(1, 1) != stream_seed(1, 2)
    assert trunks["random#1"].key != trunks["random#2"].key
    # stream 0 is the behaviour before streams: its keys are the file's without the twin
    plain = prepare(write_spec(TINY.replace("seed: [0]", "seed: [0, 1]"), "plain.yaml"))
    assert {j.key for j in plain.sweep.pretrain_jobs.values() if j.coordinates["method"] == "random"} == {
        j.key for j in prepared.sweep.pretrain_jobs.values() if j.coordinates["method"] == "random#1"}
    cells = {c.label: c for c in prepared.sweep.cells}
    assert {c.seed for c in cells.values() if c.method == "random#2"} == {0, 1}  # cells keep the grid's seed
