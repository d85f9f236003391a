"""Run a sweep: everything not yet FINISHED in MLflow, on a local Ray or a cluster.

Ctrl-C or SIGTERM stops scheduling, marks the running runs KILLED and exits 130.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from orchestrator import report, report_findings, sequential
from orchestrator.record import store
from orchestrator.sweep import (
    Outcome,
    Prepared,
    check_local_data,
    current_plan,
    finished_cells,
    prepare,
    run,
    uninterrupted,
)


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="experiment file (YAML)")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")


def finish(args: argparse.Namespace, prepared: Prepared, action: Callable[[], Outcome]) -> int:
    """Run `action` (a sweep run) with cancellation handled; print the table and where it is."""
    try:
        outcome = action()
    except KeyboardInterrupt:
        with uninterrupted():
            planned = sequential.so_far(prepared)
            done = finished_cells(planned, store.experiment_id(prepared.uri, prepared.spec.name))
            print(f"\ncancelled: {done}/{len(planned.sweep.cells)} cells FINISHED, running runs marked KILLED; "
                  f"`monosweep run {args.file}` finishes the rest", file=sys.stderr)
        return 130
    rec = report.load(outcome.uri, prepared.spec.name, outcome.cells)
    print("\n" + "\n\n".join(report.render(t, "md") for t in report.all_tables(rec)) + "\n")
    if prepared.spec.findings:
        findings = report_findings.standing(prepared.spec, rec, Path(args.file))
        print(report_findings.render(findings, "md") + "\n")
    uri = store.shown(outcome.uri)
    print(f"{outcome.finished}/{outcome.total} cells FINISHED. MLflow store: {uri}")
    print(f"  {store.ui_line(outcome.uri, rec.experiment_id)}")
    print(f"  tables and figures: monosweep report {args.file}")
    return 0 if outcome.complete else 1


def main(args: argparse.Namespace) -> int:
    prepared = prepare(args.file)
    address = args.address or prepared.spec.ray_address
    if not address:
        check_local_data(prepared, Path(args.file))
    if sequential.applies(prepared):
        now = sequential.standing(prepared)  # from the record: a rerun goes on where it stopped
        print(f"sweep {prepared.spec.name!r}: {len(prepared.spec.findings)} findings decided round by round, "
              f"{now.schedule.first} to {len(now.schedule.order)} seeds; at look {now.look} of {now.schedule.looks}",
              flush=True)
        return finish(args, prepared, lambda: sequential.run_rounds(prepared, address))
    todo = current_plan(prepared)
    print(
        f"sweep {prepared.spec.name!r}: {len(prepared.sweep.cells)} cells, {todo.done_cells} already "
        f"finished; to run: {len(todo.pretrain)} pretrain jobs ({len(todo.reused_pretrain)} finished "
        f"ones reused), {len(todo.evaluation)} evaluation jobs",
        flush=True,
    )
    if todo.empty:
        print("nothing to run: every cell is FINISHED in MLflow")
    return finish(args, prepared, lambda: run(prepared, address, todo=todo))
