"""Print the output of a submitted sweep's driver (a Ray job), or follow it until it ends."""

from __future__ import annotations

import argparse


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", help="the job id `monosweep submit` printed")
    p.add_argument("--address", required=True, help="the cluster's dashboard, e.g. http://HEAD:8265")
    p.add_argument("--follow", action="store_true", help="stream until the job ends")


def main(args: argparse.Namespace) -> int:
    from orchestrator import ray_driver

    for chunk in ray_driver.job_logs(args.address, args.job, args.follow):
        print(chunk, end="", flush=True)
    state = ray_driver.job_status(args.address, args.job)
    print(f"\njob {args.job}: {state}")
    return 0 if state in ("SUCCEEDED", "RUNNING", "PENDING") else 1
