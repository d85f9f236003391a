"""Run a sweep: everything not yet FINISHED in MLflow, on a local Ray or a cluster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator import report
from orchestrator.loading import SpecError
from orchestrator.sweep import check_local_data, current_plan, prepare, run


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="experiment file (YAML)")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")


def main(args: argparse.Namespace) -> int:
    from orchestrator.ray_driver import ClusterError

    try:
        prepared = prepare(args.file)
        address = args.address or prepared.spec.ray_address
        if not address:
            check_local_data(prepared, Path(args.file))
        todo = current_plan(prepared)
        print(
            f"sweep {prepared.spec.name!r}: {len(prepared.sweep.cells)} cells, {todo.done_cells} already "
            f"finished; to run: {len(todo.pretrain)} pretrain jobs ({len(todo.reused_pretrain)} finished "
            f"ones reused), {len(todo.probe)} probe jobs",
            flush=True,
        )
        if todo.empty:
            print("nothing to run: every cell is FINISHED in MLflow")
        outcome = run(prepared, address)
    except (SpecError, ClusterError) as e:
        print("\n".join(getattr(e, "lines", [str(e)])), file=sys.stderr)
        return 2
    rec = report.load(outcome.uri, prepared.spec.name, prepared.sweep.cells)
    print("\n" + "\n\n".join(report.render(t, "md") for t in report.tables(rec)) + "\n")
    print(f"{outcome.finished}/{outcome.total} cells FINISHED. MLflow store: {outcome.uri}")
    print(f"  browse it: mlflow ui --backend-store-uri {outcome.uri}, then open the experiment's "
          f"Training runs: http://127.0.0.1:5000/#/experiments/{rec.experiment_id}/runs")
    print(f"  tables and figures: monosweep report {args.file}")
    return 0 if outcome.complete else 1
