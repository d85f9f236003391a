"""`monosweep run` of a file with findings and `seed: {min, max}`: round by round, each round the
cells the procedure has planned so far (orchestrator/rounds.py), until every finding is
decided or the maximum is reached.

Before each round the record is read again and the procedure replayed on it, so the driver
keeps nothing of its own: killed between rounds (or in one), `monosweep run` again replays the
same looks, runs what the current one lacks and goes on, and no seed is added twice.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator import report, rounds
from orchestrator.errors import NoSweep
from orchestrator.evaluations import EVALUATIONS
from orchestrator.findings import resolve
from orchestrator.record import store
from orchestrator.report_findings import observe
from orchestrator.sweep import Outcome, Prepared, current_plan, finished_cells, run


def standing(prepared: Prepared) -> rounds.Replay:
    """The procedure replayed on what the record holds of the file's grid."""
    spec, sweep = prepared.spec, prepared.sweep
    comparisons, _ = resolve(spec.findings, sweep.cells)  # `prepare` checked them
    try:
        rec = report.load(prepared.uri, spec.name, sweep.cells)
        seen = observe(rec, comparisons)
    except NoSweep:  # nothing recorded yet: every row starts at its first seeds
        rows = tuple(dict.fromkeys(EVALUATIONS[c.evaluation].row(c) for c in sweep.cells))
        seen = rounds.Observations(rows, {}, frozenset())
    return rounds.replay(comparisons, seen, rounds.Schedule.of(spec.grid), spec.alpha)


def so_far(prepared: Prepared) -> Prepared:
    """The file's sweep as planned so far: its cells of the seeds the procedure has planned
    (the whole grid for a file that lists its seeds)."""
    if not rounds.adds_seeds(prepared.spec):
        return prepared
    return Prepared(prepared.spec, rounds.restrict(prepared.sweep, standing(prepared).planned), prepared.uri)


def run_rounds(prepared: Prepared, address: str | None, say: Callable[[str], None] = print) -> Outcome:
    """Run round after round; returns after the last, or after a round that left cells unfinished."""
    while True:
        now = standing(prepared)
        current = Prepared(prepared.spec, rounds.restrict(prepared.sweep, now.planned), prepared.uri)
        todo = current_plan(current)
        if todo.empty:
            experiment = store.experiment_id(prepared.uri, prepared.spec.name)
            say(f"seeds until decided: finished at look {now.look} of {now.schedule.looks}")
            return Outcome(todo, finished_cells(current, experiment), len(current.sweep.cells), prepared.uri,
                           current.sweep.cells)
        adding = ", ".join(f"{row} seed {seed}" for row, seed in now.adding.items()) or (
            f"every row's first {now.schedule.first} seeds")
        say(f"seeds until decided: look {now.look} of {now.schedule.looks} ({adding}): {todo.pending_cells} cells "
            f"to run in {len(todo.pretrain)} pretrain and {len(todo.evaluation)} evaluation jobs")
        outcome = run(current, address, todo=todo)
        if not outcome.complete:
            return outcome
