"""Print the output of a submitted sweep's driver (a Ray job), or follow it until it ends."""

from __future__ import annotations

import argparse

from orchestrator.cli.submit import add_address, dashboard


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", help="the job id `monosweep submit` printed")
    add_address(p)
    p.add_argument("--follow", action="store_true", help="stream until the job ends")


def main(args: argparse.Namespace) -> int:
    from orchestrator import ray_driver

    address = dashboard(args)
    for chunk in ray_driver.job_logs(address, args.job, args.follow):
        print(chunk, end="", flush=True)
    state = ray_driver.job_status(address, args.job)
    print(f"\njob {args.job}: {state}")
    return 0 if state in ("SUCCEEDED", "RUNNING", "PENDING") else 1
