"""Check an experiment file and print the size of its grid; nothing runs, nothing is written.

The paper's own images (`ameyoko`, `sf`, `animals`) are planned from their pinned hashes and
not looked for here: `run`, `smoke` and `resubmit` check them (contract/paper_images.py)."""

from __future__ import annotations

import argparse
import json

from orchestrator import rounds
from orchestrator.findings import resolve
from orchestrator.sweep import prepare


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="experiment file (YAML)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def main(args: argparse.Namespace) -> int:
    prepared = prepare(args.file, reads_images=False)
    sweep, spec = prepared.sweep, prepared.spec
    comparisons = resolve(spec.findings, sweep.cells)[0]
    fewest = None
    if rounds.adds_seeds(prepared.spec):  # its size at the most seeds, the fewest beside it
        least, sweep = rounds.extremes(sweep, comparisons, rounds.Schedule.of(spec.grid))
        fewest = len(least.cells)
    if args.json:
        print(json.dumps({
            "file": args.file, "name": spec.name, "cells": len(sweep.cells),
            "pretrain_jobs": len(sweep.pretrain_jobs), "evaluation_jobs": len(sweep.evaluation_jobs),
            **({"findings": len(spec.findings), "comparisons": len(comparisons)} if spec.findings else {}),
            **({"cells_at_fewest_seeds": fewest} if fewest is not None else {}),
        }, indent=2))
        return 0
    print(
        f"{args.file}: valid. sweep {spec.name!r}: {len(sweep.cells)} cells, "
        f"{len(sweep.pretrain_jobs)} pretrain jobs, {len(sweep.evaluation_jobs)} evaluation jobs"
        + (" at the most seeds" if fewest is not None else "")
    )
    if spec.findings:
        print(f"findings: {len(spec.findings)}, {len(comparisons)} comparisons (finding, column)"
              + (f"; seeds until decided: {fewest} cells at the fewest seeds" if fewest is not None else ""))
    return 0
