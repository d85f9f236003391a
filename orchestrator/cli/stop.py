"""Stop a submitted sweep: its driver gets SIGTERM, marks its running runs KILLED and exits.

`monosweep resubmit FILE` (or `run`, or `submit`) later finishes what was left; finished
cells are kept.
"""

from __future__ import annotations

import argparse

from orchestrator.cli.submit import add_address, dashboard


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", help="the job id `monosweep submit` printed")
    add_address(p)
    p.add_argument("--wait", type=float, default=120, metavar="SECONDS",
                   help="how long to wait for the job to end (default 120; 0: do not wait)")


def main(args: argparse.Namespace) -> int:
    from orchestrator import ray_driver

    address = dashboard(args)
    if not ray_driver.stop_job(address, args.job):
        print(f"job {args.job} was not running: {ray_driver.job_status(address, args.job)}")
        return 0
    if not args.wait:
        print(f"job {args.job}: stop requested")
        return 0
    state = ray_driver.wait_job(address, args.job, args.wait)
    print(f"job {args.job}: {state}")
    return 0 if state in ("STOPPED", "SUCCEEDED", "FAILED") else 1  # 1: still not ended
