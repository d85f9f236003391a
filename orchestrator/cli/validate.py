"""Check an experiment file and print the size of its grid; nothing runs, nothing is written."""

from __future__ import annotations

import argparse

from orchestrator.sweep import prepare


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="experiment file (YAML)")


def main(args: argparse.Namespace) -> int:
    prepared = prepare(args.file)
    sweep = prepared.sweep
    print(
        f"{args.file}: valid. sweep {prepared.spec.name!r}: {len(sweep.cells)} cells, "
        f"{len(sweep.pretrain_jobs)} pretrain jobs, {len(sweep.evaluation_jobs)} evaluation jobs"
    )
    return 0
