"""Run a sweep: everything not yet FINISHED in MLflow, on a local Ray or a cluster.

With --max-gpu-hours H (or `max_gpu_hours` in the file) it first prices what is left to run
(`monosweep plan --estimate`'s arithmetic) and refuses, exit 2, when that is above H GPU-hours.
Ctrl-C or SIGTERM stops scheduling, marks the running runs KILLED and exits 130.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from orchestrator import report, report_findings, rounds, sequential
from orchestrator.errors import UserError
from orchestrator.plan import Plan
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
    p.add_argument(
        "--max-gpu-hours", type=float, metavar="H",
        help="refuse to start (exit 2) when the estimate of what is left to run is above H GPU-hours, "
        "naming the largest jobs (default: the file's max_gpu_hours; none: no limit)",
    )


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


def within_budget(args: argparse.Namespace, prepared: Prepared, todo: Plan) -> None:
    """Raises UserError when the estimate of `todo` is above the limit (--max-gpu-hours, else
    the file's), naming the largest jobs; the estimate imports torch, and only when a limit is set."""
    limit = args.max_gpu_hours if args.max_gpu_hours is not None else prepared.spec.max_gpu_hours
    if limit is None or todo.empty:
        return
    from orchestrator import estimate

    rate = estimate.throughput(prepared.spec.compute)
    if refusal := estimate.over_budget([*todo.pretrain, *todo.evaluation], rate, limit):
        raise UserError(f"{args.file}: {refusal[0]}", *refusal[1:])


def main(args: argparse.Namespace) -> int:
    if args.max_gpu_hours is not None and args.max_gpu_hours <= 0:
        raise UserError(f"--max-gpu-hours {args.max_gpu_hours:g}: a number of GPU-hours above 0")
    prepared = prepare(args.file)
    address = args.address or prepared.spec.ray_address
    if not address:
        check_local_data(prepared, Path(args.file))
    if rounds.adds_seeds(prepared.spec):
        now = sequential.standing(prepared)  # from the record: a rerun goes on where it stopped
        print(f"sweep {prepared.spec.name!r}: {len(prepared.spec.findings)} findings decided round by round, "
              f"{now.schedule.first} to {len(now.schedule.order)} seeds; at look {now.look} of {now.schedule.looks}",
              flush=True)
        return finish(args, prepared, lambda: sequential.run_rounds(prepared, address))
    todo = current_plan(prepared)
    within_budget(args, prepared, todo)
    print(
        f"sweep {prepared.spec.name!r}: {len(prepared.sweep.cells)} cells, {todo.done_cells} already "
        f"finished; to run: {len(todo.pretrain)} pretrain jobs ({len(todo.reused_pretrain)} finished "
        f"ones reused), {len(todo.evaluation)} evaluation jobs",
        flush=True,
    )
    if todo.empty:
        print("nothing to run: every cell is FINISHED in MLflow")
    return finish(args, prepared, lambda: run(prepared, address, todo=todo))
