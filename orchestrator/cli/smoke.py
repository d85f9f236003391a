"""Run every job shape of an experiment file (each method's pre-training, each evaluation on
each dataset) for K steps at the file's real shapes, through Ray and MLflow on this machine,
and print per shape the seconds per step, samples/s, peak memory and the bottleneck.

How a paper-scale file is checked before a cluster is rented. Nothing of the sweep's record is
touched: the runs go to a throwaway SQLite store (--tracking-uri keeps them), to the experiment
`smoke/NAME`, tagged monosweep.smoke, under keys no real job or cell has. The data is read from
the file's data roots, or from --data-root DATASET=PATH (a folder in the dataset's own layout:
fixture folders will do, the timing is of the shapes, not of the images; `python -m
tests.fake_datasets DIR` writes ImageNet's and CIFAR's and prints the flags).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from contract.datasets import LABELLED_DATASETS
from orchestrator import smoke
from orchestrator.errors import UserError
from orchestrator.record import store
from orchestrator.sweep import check_local_data, prepare

DEFAULT_STEPS = 3


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="experiment file (YAML)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, metavar="K",
                   help="training steps per job shape (default: %(default)s)")
    p.add_argument("--data-root", action="append", default=[], metavar="DATASET=PATH",
                   help="read DATASET from PATH instead of the file's data root (repeatable)")
    p.add_argument("--tracking-uri", metavar="URI",
                   help="MLflow store for the smoke runs (default: a temporary SQLite file, deleted)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def data_roots(pairs: list[str]) -> dict[str, str]:
    """`imagenet=/tmp/fake` -> {"imagenet": "/tmp/fake"} (made absolute: the workers' folder differs).

    Raises:
        UserError: not DATASET=PATH, or a dataset monosweep does not know.
    """
    roots = {}
    for pair in pairs:
        dataset, sep, path = pair.partition("=")
        if not sep or not path:
            raise UserError(f"--data-root {pair!r}: give DATASET=PATH")
        if dataset not in LABELLED_DATASETS:
            raise UserError(f"--data-root {pair!r}: {dataset!r} is not one of {', '.join(LABELLED_DATASETS)}")
        roots[dataset] = str(Path(path).resolve())
    return roots


def main(args: argparse.Namespace) -> int:
    if args.steps < 1:
        raise UserError(f"--steps {args.steps}: at least 1")
    prepared = prepare(args.file, data_roots=data_roots(args.data_root))
    chosen = smoke.shapes(prepared.sweep, args.steps)
    with tempfile.TemporaryDirectory(prefix="monosweep-smoke-") as tmp:
        uri = args.tracking_uri or f"sqlite:///{tmp}/mlflow.db"
        store.check_reachable(uri)
        runs = smoke.smoke_sweep(prepared, chosen, uri, Path(tmp) / "trials")
        check_local_data(runs, Path(args.file))
        net = prepared.spec.network
        print(f"smoke {args.file}: {len(chosen)} job shapes, {args.steps} steps each, at {net.input_size} px, "
              f"width {net.width:g}; runs in experiment {runs.spec.name!r} of {store.shown(uri)}", flush=True)
        started = time.monotonic()
        outcome, rows = smoke.run(runs, chosen, args.steps)
        seconds = time.monotonic() - started
    ok = outcome.complete and all(r.status == "FINISHED" for r in rows)
    if args.json:
        print(json.dumps({"file": args.file, "steps": args.steps, "seconds": seconds,
                          "rows": smoke.as_json(rows)}, indent=2))
        return 0 if ok else 1
    print("\n" + "\n".join(smoke.text(rows)))
    kept = "" if args.tracking_uri else " (the temporary store is deleted; --tracking-uri keeps the runs)"
    print(f"\n{len(rows)} job shapes in {seconds / 60:.1f} min{kept}")
    return 0 if ok else 1
