"""Check an experiment file and print the size of its grid; nothing runs, nothing is written.

The paper's own images (`ameyoko`, `sf`, `animals`) are planned from their pinned hashes and
not looked for here: `run`, `smoke` and `resubmit` check them (contract/paper_images.py)."""

from __future__ import annotations

import argparse
import json

from orchestrator.sweep import prepare


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="experiment file (YAML)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def main(args: argparse.Namespace) -> int:
    prepared = prepare(args.file, reads_images=False)
    sweep = prepared.sweep
    if args.json:
        print(json.dumps({
            "file": args.file, "name": prepared.spec.name, "cells": len(sweep.cells),
            "pretrain_jobs": len(sweep.pretrain_jobs), "evaluation_jobs": len(sweep.evaluation_jobs),
        }, indent=2))
        return 0
    print(
        f"{args.file}: valid. sweep {prepared.spec.name!r}: {len(sweep.cells)} cells, "
        f"{len(sweep.pretrain_jobs)} pretrain jobs, {len(sweep.evaluation_jobs)} evaluation jobs"
    )
    return 0
