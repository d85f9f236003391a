"""Where a sweep stands, from MLflow alone: counts by state, overall and per axis value; the
failed cells with their error; the running ones with host and elapsed time."""

from __future__ import annotations

import argparse
import json

from orchestrator import report, status
from orchestrator.loading import load_spec
from orchestrator.record import runs, store


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="experiment file (YAML); its name and tracking_uri say where to look")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _line(c: dict[str, int]) -> str:
    return " | ".join(f"{state} {n}" for state, n in c.items())


def main(args: argparse.Namespace) -> int:
    spec = load_spec(args.file)
    rec = report.load(store.resolve_uri(spec.tracking_uri), spec.name)
    alive = runs.live_driver(rec.uri, rec.experiment_id) is not None
    states = status.cell_states(rec.cells, rec.cell_runs, rec.pretrain, alive)
    total, axes = status.counts(states), status.by_axis(states)
    failed = [s for s in states if s.state in ("failed", "killed")]
    running = [s for s in states if s.state in ("running", "stale")]
    if args.json:
        print(json.dumps({
            "sweep": rec.name, "tracking_uri": store.shown(rec.uri), "link": store.ui_link(rec.uri, rec.experiment_id),
            "cells": len(states), "counts": total, "by_axis": axes,
            "failed": [{"cell": s.cell.label, "key": s.cell.key, "state": s.state, "error": s.error} for s in failed],
            "driver_alive": alive,
            "running": [{"cell": s.cell.label, "key": s.cell.key, "state": s.state, "where": s.where} for s in running],
        }, indent=2))
        return 0
    print(f"sweep {rec.name!r} ({store.shown(rec.uri)}): {len(states)} cells")
    print(f"  {_line(total)}")
    print(f"  {store.ui_line(rec.uri, rec.experiment_id)}")
    for axis, values in axes.items():
        print(f"by {axis}:")
        for value, c in values.items():
            print(f"  {value}: {_line({k: v for k, v in c.items() if v})}")
    for s in failed:
        print(f"{s.state}: {s.cell.label}: {s.error}")
    for s in running:
        print(f"{s.state}: {s.cell.label} on {s.where}")
    if not alive and running:
        print(f"no driver is running this sweep: its RUNNING runs are stale; `monosweep run {args.file}` "
              "marks them KILLED and reruns them")
    return 0
