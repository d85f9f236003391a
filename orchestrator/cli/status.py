"""Where a sweep stands, from MLflow alone: counts by state, overall and per axis value; the
failed cells with their error; the running ones with host and elapsed time; each finding
decided or not, its seeds so far, and what the next round adds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from orchestrator import report, report_findings, status
from orchestrator.loading import load_spec
from orchestrator.record import runs, store
from orchestrator.record.schema import resolve_uri


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="experiment file (YAML); its name and tracking_uri say where to look")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _line(c: dict[str, int]) -> str:
    return " | ".join(f"{state} {n}" for state, n in c.items())


def findings(standing: report_findings.Standing) -> dict[str, Any]:
    """Each comparison decided or not with its seeds so far; the look, and what it adds."""
    r = standing.replay
    return {
        "where": standing.where,
        "look": r.look,
        "looks": r.schedule.looks,
        "complete": r.complete,
        "finished": r.finished,
        "adding": r.adding if not r.complete else {},
        "comparisons": [
            {
                "finding": o.comparison.finding.name,
                "column": o.comparison.column,
                "verdict": o.verdict,
                "decided": o.decided and o.gate is None,
                "look": o.look,
                "held_back_by": o.gate[1] if o.gate else None,
                "seeds": o.result.evidence.seeds if o.result.evidence else 0,
            }
            for o in r.outcomes
        ],
    }


def _findings_lines(found: dict[str, Any]) -> list[str]:
    lines = [f"findings: {found['where']}"]
    for c in found["comparisons"]:
        state = f"{c['verdict']} at look {c['look']}" if c["decided"] else c["verdict"]
        state += f" ({c['held_back_by']})" if c["held_back_by"] else ""
        lines.append(f"  {c['finding']} {c['column']}: {state}, {c['seeds']} seeds")
    if found["adding"]:
        lines.append("  this round adds " + ", ".join(f"seed {seed} to {row}" for row, seed in found["adding"].items()))
    elif not found["complete"] and found["looks"] > 1 and found["look"] == 1:
        lines.append("  this round runs every row's first seeds")
    return lines


def main(args: argparse.Namespace) -> int:
    spec = load_spec(args.file)
    rec = report.load(resolve_uri(spec.tracking_uri), spec.name)
    alive = runs.live_driver(rec.uri, rec.experiment_id) is not None
    states = status.cell_states(rec.cells, rec.cell_runs, rec.pretrain, alive)
    total, axes = status.counts(states), status.by_axis(states)
    failed = [s for s in states if s.state in ("failed", "killed")]
    running = [s for s in states if s.state in ("running", "stale")]
    found = findings(report_findings.standing(spec, rec, Path(args.file))) if spec.findings else None
    if args.json:
        print(json.dumps({
            "sweep": rec.name, "tracking_uri": store.shown(rec.uri), "link": store.ui_link(rec.uri, rec.experiment_id),
            "cells": len(states), "counts": total, "by_axis": axes,
            "failed": [{"cell": s.cell.label, "key": s.cell.key, "state": s.state, "error": s.error} for s in failed],
            "driver_alive": alive,
            "running": [{"cell": s.cell.label, "key": s.cell.key, "state": s.state, "where": s.where} for s in running],
            **({"findings": found} if found else {}),
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
    if found:
        print("\n".join(_findings_lines(found)))
    if not alive and running:
        print(f"no driver is running this sweep: its RUNNING runs are stale; `monosweep run {args.file}` "
              "marks them KILLED and reruns them")
    return 0
