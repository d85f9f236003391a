"""Run a sweep: everything not yet FINISHED in MLflow, on a local Ray or a cluster.

Ctrl-C or SIGTERM stops scheduling, marks the running runs KILLED and exits 130.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from orchestrator import record, report
from orchestrator.sweep import Outcome, finished_cells, Prepared, check_local_data, current_plan, prepare, run


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="experiment file (YAML)")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def finish(args: argparse.Namespace, prepared: Prepared, action: Callable[[], Outcome]) -> int:
    """Run `action` (a sweep run) with cancellation handled; print the table and where it is."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        outcome = action()
    except KeyboardInterrupt:
        done = finished_cells(prepared, record.experiment_id(prepared.uri, prepared.spec.name))
        print(f"\ncancelled: {done}/{len(prepared.sweep.cells)} cells FINISHED, running runs marked KILLED; "
              f"`monosweep run {args.file}` finishes the rest", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    rec = report.load(outcome.uri, prepared.spec.name, prepared.sweep.cells)
    print("\n" + "\n\n".join(report.render(t, "md") for t in report.all_tables(rec)) + "\n")
    uri = record.shown(outcome.uri)
    print(f"{outcome.finished}/{outcome.total} cells FINISHED. MLflow store: {uri}")
    print(f"  browse it: {browse_hint(uri, rec.experiment_id)}")
    print(f"  tables and figures: monosweep report {args.file}")
    return 0 if outcome.complete else 1


def browse_hint(uri: str, experiment_id: str) -> str:
    """Where to see the runs: the experiment's Training runs view (MLflow 3 opens GenAI's
    traces view unless `workflowType=machine_learning` says otherwise), on the tracking
    server itself, or on an `mlflow ui` over a local store."""
    runs = f"#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/{runs} (through the address you publish it on)"
    return f"mlflow ui --backend-store-uri {uri}, then http://127.0.0.1:5000/{runs}"


def main(args: argparse.Namespace) -> int:
    prepared = prepare(args.file)
    address = args.address or prepared.spec.ray_address
    if not address:
        check_local_data(prepared, Path(args.file))
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
