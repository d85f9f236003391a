"""Seeds until decided, replayed on what a record holds: which rows get the next seed, when a
look waits, that a decided comparison keeps the verdict of its look, and that a seed's cells
keep the keys they have in a file listing that seed."""

from __future__ import annotations

import numpy as np

from orchestrator import decide, rounds
from orchestrator.findings import Comparison, Finding
from orchestrator.grid import expand
from orchestrator.loading import load_spec
from tests.conftest import TINY

TABLE = ("linear_probe", "top1", "fashion_mnist")
ROWS = ("r0", "r1", "r2", "r3")
SCHEDULE = rounds.Schedule(tuple(range(6)), 3)  # seed: {min: 3, max: 6}: looks at 3, 4, 5, 6 seeds


def comparison(name: str, a: str, b: str, kind: str = "greater", **more) -> Comparison:
    finding = Finding(name=name, claim=name, a=a, b=b, at=("conv1",), kind=kind, **more)
    return Comparison(finding, TABLE, a, "conv1", b, "conv1")


# r1 is far above r0 (decided at once); r2 and r3 are one distribution (A/A)
COMPARISONS = [comparison("gain", "r1", "r0"), comparison("twins", "r3", "r2")]


def observations(done_upto: int = 6, missing: tuple[tuple[str, int], ...] = ()) -> rounds.Observations:
    rng = np.random.default_rng(7)
    values = {row: {"conv1": {s: mu + rng.normal(0, 1) for s in range(6)}}
              for row, mu in zip(ROWS, (0.0, 30.0, 5.0, 5.0), strict=True)}
    done = {(row, s) for row in ROWS for s in range(done_upto)} - set(missing)
    for row, s in missing:
        del values[row]["conv1"][s]
    return rounds.Observations(ROWS, {TABLE: values}, frozenset(done))


def test_a_decided_comparison_stops_its_rows_and_undecided_ones_get_the_next_seed():
    r = rounds.replay(COMPARISONS, observations(), SCHEDULE, 0.05)
    gain, twins = r.outcomes
    assert gain.result.verdict == decide.HELD and gain.look == 1 and gain.result.evidence.seeds == 3
    assert twins.result.verdict == decide.UNDECIDED and not twins.decided
    # every look added seed 3, 4, 5 to the twins only; the last look is at the maximum
    assert r.complete and r.finished and r.look == SCHEDULE.looks == 4
    assert r.counts == {"r0": 3, "r1": 3, "r2": 6, "r3": 6}
    assert twins.result.evidence.seeds == 6
    assert r.planned == {(row, s) for row in ROWS for s in range(r.counts[row])}


def test_an_incomplete_look_waits_and_shows_the_last_complete_one():
    seen = observations(done_upto=6, missing=(("r3", 4),))  # look 3's new seed of r3 not finished
    r = rounds.replay(COMPARISONS, seen, SCHEDULE, 0.05)
    assert not r.complete and not r.finished and r.look == 3
    assert r.adding == {"r2": 4, "r3": 4}  # what this look adds, the twins' seed 4
    assert r.outcomes[1].result.evidence.seeds == 4  # verdicts as of look 2
    assert (("r3", 4) in r.planned) and ("r1", 3) not in r.planned


def test_the_first_look_is_provisional_until_complete():
    r = rounds.replay(COMPARISONS, observations(done_upto=3, missing=(("r0", 2),)), SCHEDULE, 0.05)
    assert r.look == 1 and not r.complete and r.adding == {}
    assert r.outcomes[0].result.evidence.seeds == 2 and not r.outcomes[0].decided  # on what it holds, not kept
    assert r.planned == {(row, s) for row in ROWS for s in range(3)}


def test_a_rerun_replays_the_same_looks():
    """What a killed driver leaves (look 2 complete, nothing of look 3) replays to the same plan
    every time, and the full record to the same verdicts as one uninterrupted run."""
    partial = observations(done_upto=6, missing=tuple((row, s) for row in ROWS for s in (4, 5)))
    first, again = (rounds.replay(COMPARISONS, partial, SCHEDULE, 0.05) for _ in range(2))
    assert first.planned == again.planned and first.look == again.look == 3
    assert first.adding == {"r2": 4, "r3": 4}
    whole = rounds.replay(COMPARISONS, observations(), SCHEDULE, 0.05)
    assert first.planned < whole.planned


def test_a_decided_verdict_is_kept_at_later_looks():
    # the shared row r2 keeps growing for the twins; "less" decided at look 1 stays decided
    comparisons = [comparison("below", "r0", "r2", "less"), *COMPARISONS]
    r = rounds.replay(comparisons, observations(), SCHEDULE, 0.05)
    below = r.outcomes[0]
    assert below.look == 1 and below.result.verdict == decide.HELD and below.result.evidence.seeds == 3
    assert r.counts["r2"] == 6 and r.counts["r0"] == 3


def test_not_testable_comparisons_add_no_seeds():
    gone = comparison("gone", "r1", "r9")
    r = rounds.replay([gone], rounds.Observations(("r1",), {TABLE: {"r1": {"conv1": {0: 1.0}}}},
                                                  frozenset({("r1", s) for s in range(6)})), SCHEDULE, 0.05)
    assert r.outcomes[0].result.verdict == decide.NOT_TESTABLE and r.finished and r.look == 1


def test_seeds_keep_the_keys_of_a_file_listing_them(write_spec, tmp_path):
    findings = ("findings:\n  - {name: f, claim: c, a: rotnet N1 astronaut full, b: random, at: [conv1], "
                "kind: greater}\n")
    ranged = load_spec(write_spec(TINY.replace("seed: [0]", "seed: {min: 2, max: 4}") + findings, "r.yaml"))
    listed = load_spec(write_spec(TINY.replace("seed: [0]", "seed: [0, 1, 2, 3]"), "l.yaml"))
    full = expand(ranged, tmp_path)
    assert [c.key for c in full.cells] == [c.key for c in expand(listed, tmp_path).cells]
    rows = {"random", "rotnet N1 astronaut full", "rotnet N1 astronaut none"}
    planned = {(row, s) for row in rows for s in (0, 1)} | {("random", 2)}
    cut = rounds.restrict(full, planned)
    assert {(c.method, c.augmentation, c.seed) for c in cut.cells} == {
        ("random", None, 0), ("random", None, 1), ("random", None, 2),
        *(("rotnet", a, s) for a in ("full", "none") for s in (0, 1))}
    assert len(cut.cells) == 7 * 5 and len(cut.pretrain_jobs) == len(cut.evaluation_jobs) == 7
    assert all(c.key in {x.key for x in full.cells} for c in cut.cells)
    comparisons = [comparison("f", "rotnet N1 astronaut full", "random")]
    least, most = rounds.extremes(full, comparisons, rounds.Schedule.of(ranged.grid))
    assert len(least.pretrain_jobs) == 6 and len(most.pretrain_jobs) == 4 + 4 + 2  # none stays at 2 seeds


def test_a_control_not_yet_held_holds_the_other_verdicts_back_and_gets_the_seeds():
    """The twins (an A/A pair) as a control that cannot hold: while it is undecided the decided
    gain is not read (undecided, its own test kept), and at the last look it is not testable; the
    seeds go to the control's rows only, the gain's rows keep their first three."""
    control = comparison("separates", "r3", "r2", control=True)
    r = rounds.replay([comparison("gain", "r1", "r0"), control], observations(), SCHEDULE, 0.05)
    gain, separates = r.outcomes
    assert separates.verdict == decide.UNDECIDED and separates.gate is None
    assert gain.result.verdict == decide.HELD and gain.look == 1  # its own test, decided at once
    assert gain.verdict == decide.NOT_TESTABLE and "the control 'separates' (conv1) is undecided" in gain.gate[1]
    assert r.finished and r.counts == {"r0": 3, "r1": 3, "r2": 6, "r3": 6}
    midway = rounds.replay([comparison("gain", "r1", "r0"), control],
                           observations(missing=tuple((row, s) for row in ROWS for s in (4, 5))), SCHEDULE, 0.05)
    assert midway.outcomes[0].verdict == decide.UNDECIDED and midway.outcomes[0].gate[1].endswith("so far")


def test_a_held_control_lets_the_verdicts_be_read_and_a_contradicted_one_stops_them():
    held = rounds.replay([comparison("twins", "r3", "r2"), comparison("sep", "r1", "r0", control=True)],
                         observations(), SCHEDULE, 0.05)
    assert [o.gate for o in held.outcomes] == [None, None] and held.outcomes[1].verdict == decide.HELD
    contradicted = rounds.replay([comparison("twins", "r3", "r2"), comparison("sep", "r0", "r1", control=True)],
                                 observations(), SCHEDULE, 0.05)
    twins, sep = contradicted.outcomes
    assert sep.verdict == decide.CONTRADICTED and twins.verdict == decide.NOT_TESTABLE
    # nothing more to read: no seed is added for the twins
    assert contradicted.finished and contradicted.look == 1 and contradicted.counts["r2"] == 3
