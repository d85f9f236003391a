"""Rerun exactly the selected cells (by default the failed and killed ones). Finished pretrain
runs are reused, reruns reopen their runs under the same sweep run, attempts are counted."""

from __future__ import annotations

import argparse

from orchestrator import report, sequential, status
from orchestrator.cli.run import finish
from orchestrator.errors import UserError
from orchestrator.status import STATES, axes
from orchestrator.sweep import prepare, run


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="experiment file (YAML)")
    p.add_argument("--status", default="failed,killed", help=f"comma-separated states to rerun, of {', '.join(STATES)}")
    p.add_argument("--where", action="append", default=[], metavar="AXIS=VALUE",
                   help=f"only cells with this axis value (repeatable); axes: {', '.join(axes())}")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")


def _where(pairs: list[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for pair in pairs:
        axis, sep, value = pair.partition("=")
        if not sep or axis not in axes():
            raise UserError(f"--where {pair!r}: expected AXIS=VALUE with AXIS one of {', '.join(axes())}")
        out.setdefault(axis, set()).add(value)
    return out


def main(args: argparse.Namespace) -> int:
    wanted = set(args.status.split(","))
    if not wanted <= set(STATES):
        raise UserError(f"--status {args.status!r}: allowed states are {', '.join(STATES)}")
    where = _where(args.where)
    prepared = sequential.so_far(prepare(args.file))  # seeds until decided: the seeds planned so far
    rec = report.load(prepared.uri, prepared.spec.name, prepared.sweep.cells)
    states = status.cell_states(rec.cells, rec.cell_runs, rec.pretrain)
    chosen = status.select(states, wanted, where)
    print(f"resubmitting {len(chosen)} of {len(states)} cells ({args.status})", flush=True)
    if not chosen:
        return 0
    return finish(args, prepared, lambda: run(prepared, args.address or prepared.spec.ray_address, only=chosen))
