"""Run every benchmark in turn: `python -m bench [--tiny]` (each writes bench/results/NAME.json)."""

from __future__ import annotations

import importlib
import sys

SCRIPTS = ("augment", "probes", "orchestration", "logging_overhead", "memory", "gpu")


def main(argv: list[str]) -> None:
    for name in SCRIPTS:
        print(f"\n== python -m bench.{name} {' '.join(argv)}", flush=True)
        importlib.import_module(f"bench.{name}").main(list(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
