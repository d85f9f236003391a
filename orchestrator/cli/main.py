"""`monosweep SUBCOMMAND ...`: exit 0 on success, 1 when jobs failed, 2 on bad input."""

from __future__ import annotations

import argparse
import sys

from orchestrator.cli import env, logs, report, resubmit, run, status, submit, validate
from orchestrator.errors import UserError

SUBCOMMANDS = {
    "validate": validate,
    "run": run,
    "status": status,
    "resubmit": resubmit,
    "report": report,
    "submit": submit,
    "logs": logs,
    "env": env,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="monosweep",
        description="Sweeps of single-image self-supervision (Asano et al., ICLR 2020) on Ray, recorded in MLflow.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        module.register(sub.add_parser(name, help=module.__doc__.splitlines()[0], description=module.__doc__))
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return SUBCOMMANDS[args.command].main(args)
    except UserError as e:  # bad input or environment: say what and where, spend nothing
        print("\n".join(e.lines), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
