"""Run a sweep's driver on a Ray cluster as a Ray job (Jobs API), so it outlives this machine.

The experiment file's folder travels with the job; follow it with `monosweep logs JOB` and
`monosweep status FILE`. Records must go to a tracking server the cluster reaches (set
MLFLOW_TRACKING_URI on the cluster, or tracking_uri in the file), not a local SQLite file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.sweep import prepare


def add_address(p: argparse.ArgumentParser) -> None:
    """`--address`, shared by the commands that talk to the Ray Jobs API (submit, logs, stop)."""
    p.add_argument("--address", help="the cluster's dashboard, e.g. http://HEAD:8265 (default: RAY_ADDRESS)")


def dashboard(args: argparse.Namespace) -> str:
    """The Jobs API address: --address, else RAY_ADDRESS.

    Raises:
        UserError: neither is given.
    """
    address = args.address or os.environ.get("RAY_ADDRESS")
    if not address:
        raise UserError("no Ray cluster given: pass --address http://HEAD:8265 (the head's dashboard) "
                        "or set RAY_ADDRESS")
    return address


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="experiment file (YAML)")
    add_address(p)
    p.add_argument("--json", action="store_true", help="print the job id, address and follow-up commands as JSON")


def main(args: argparse.Namespace) -> int:
    from orchestrator import ray_driver

    address = dashboard(args)
    prepared = prepare(args.file, reads_images=False)
    path = Path(args.file).resolve()
    if prepared.spec.tracking_uri.startswith("sqlite:///") and not prepared.spec.tracking_uri.startswith("sqlite:////"):
        print("warning: a relative SQLite tracking_uri is written inside the job's working folder on the "
              "cluster; use a tracking server (MLFLOW_TRACKING_URI on the cluster)", file=sys.stderr)
    if "://" not in prepared.spec.storage and not Path(prepared.spec.storage).is_absolute():
        print(f"warning: storage {prepared.spec.storage!r} is relative: Tune's trials stay in the job's folder on "
              "the head; give a shared path or an object-store URI to keep them", file=sys.stderr)
    job_id = ray_driver.submit(
        address, path.parent, f"python -m orchestrator.cli.main run {path.name}",
        f"monosweep-{prepared.spec.name}-{time.strftime('%Y%m%d-%H%M%S')}",
    )
    follow, state = f"monosweep logs {job_id} --address {address} --follow", f"monosweep status {args.file}"
    if args.json:
        print(json.dumps({"job_id": job_id, "address": address, "follow": follow, "status": state,
                          "stop": f"monosweep stop {job_id} --address {address}"}, indent=2))
        return 0
    print(f"submitted {job_id}")
    print(f"  follow: {follow}")
    print(f"  state:  {state}")
    print(f"  stop:   monosweep stop {job_id} --address {address}")
    return 0
