"""Run tests again and again with busy CPU loops beside them, and count failures per test: the
fault and signal tests must hold on a loaded machine, not only on an idle one.

    python -m tests.stress --rounds 5 --busy 2 tests/test_operations.py tests/test_signals.py

Exits 1 when any test failed in any round.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

BUSY = "while True: pass"


def outcomes(junit: Path) -> dict[str, str]:
    """test id -> passed / failed / skipped, from pytest's JUnit XML."""
    out = {}
    for case in ET.parse(junit).iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        states = {child.tag for child in case}
        out[name] = "failed" if states & {"failure", "error"} else "skipped" if "skipped" in states else "passed"
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--busy", type=int, default=2, help="CPU-bound loops running beside the tests")
    p.add_argument("tests", nargs="+", help="pytest paths or node ids")
    args = p.parse_args(argv)
    loops = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.busy)]
    failures: Counter[str] = Counter()
    runs: Counter[str] = Counter()
    try:
        for round_ in range(1, args.rounds + 1):
            with tempfile.TemporaryDirectory() as tmp:
                junit = Path(tmp) / "junit.xml"
                start = time.monotonic()
                subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                                *args.tests], check=False)
                result = outcomes(junit)
            for name, state in result.items():
                runs[name] += state != "skipped"
                failures[name] += state == "failed"
            print(f"round {round_}/{args.rounds}: {sum(s == 'failed' for s in result.values())} failed of "
                  f"{len(result)} in {time.monotonic() - start:.0f} s with {args.busy} busy loops", flush=True)
    finally:
        for loop in loops:
            loop.kill()
    print(f"\nfailures per test over {args.rounds} rounds ({args.busy} busy loops):")
    for name in sorted(runs):
        print(f"  {failures[name]}/{runs[name]}  {name}")
    total = sum(failures.values())
    print(f"{sum(runs.values()) - total} passed, {total} failed")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
