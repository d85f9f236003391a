"""`monosweep SUBCOMMAND ...`: each subcommand is one module that parses, calls the library,
prints and returns an exit code (listed in `monosweep --help`).

The installed plugins are loaded first (contract/plugins.py): their methods, evaluation kinds
and ops are in the tables before a file is validated or an option listed. Only the module of
the subcommand given is imported (all of them for `monosweep --help`): `validate` and `plan`
load neither MLflow nor matplotlib.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import signal
import sys
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType

from contract import plugins
from orchestrator.errors import UserError

SUBCOMMANDS = ("validate", "plan", "smoke", "run", "status", "resubmit", "report", "submit", "logs", "stop", "env")

EXIT_CODES = """\
exit codes:
  0    success
  1    some cells failed (`monosweep status FILE` names them), or a Ray job failed or did not end
  2    bad input: the file, an option or the environment (a store or cluster not reached)
  130  interrupted (Ctrl-C or SIGTERM): running runs were marked KILLED
"""


def first_sentence(doc: str) -> str:
    """The first sentence of a docstring's first paragraph, on one line: argparse's one-line
    help for a subcommand, which must not stop mid-sentence where the docstring wraps. A
    sentence ends at a full stop before a capital or the end ("e.g. x" goes on)."""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    match = re.match(r"(.+?[.!?])(?=\s+[A-Z`]|$)", paragraph)
    return match.group(1) if match else paragraph


def _version() -> str:
    try:
        return version("monosweep")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def subcommand(name: str) -> ModuleType:
    return importlib.import_module(f"orchestrator.cli.{name}")


def parser(commands: tuple[str, ...] = SUBCOMMANDS) -> argparse.ArgumentParser:
    """The command line, with the subcommands `commands` (by default all)."""
    p = argparse.ArgumentParser(
        prog="monosweep",
        description="Sweeps of single-image self-supervision (Asano et al., ICLR 2020) on Ray, recorded in MLflow.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keeps the exit-code table's lines
    )
    p.add_argument("--version", action="version", version=f"monosweep {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in commands:
        module = subcommand(name)
        module.register(sub.add_parser(name, help=first_sentence(module.__doc__), description=module.__doc__))
    return p


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        plugins.load()
    except plugins.PluginError as e:  # a broken plugin is named before anything else runs
        print(e, file=sys.stderr)
        return 2
    given = argv[:1] if argv[:1] and argv[0] in SUBCOMMANDS else []
    args = parser(tuple(given) or SUBCOMMANDS).parse_args(argv)
    # A scheduler's SIGTERM is a Ctrl-C, from the first line on: planning is stopped as cleanly
    # as a running sweep (which marks its runs KILLED on the way out).
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return subcommand(args.command).main(args)
    except UserError as e:  # bad input or environment: say what and where, spend nothing
        print("\n".join(e.lines), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def entry() -> None:
    """The `monosweep` command. Interrupted (exit 130), it leaves at once: the record is settled
    by then (runs marked KILLED, the sweep run closed, every write synchronous), and threads a
    library left behind (Ray's, Tune's) must not hold the process open."""
    try:
        code = main()
        sys.stdout.flush()  # inside the try: a pipe closed early fails here, not at interpreter exit
    except BrokenPipeError:
        # `monosweep plan FILE | head`: the reader has gone; no traceback (Python's signal docs, SIGPIPE)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


if __name__ == "__main__":
    entry()
