"""Mono dataset throughput: the batched augmentation (workers.data.batch_augment: one affine
grid-sample per batch, vectorised jitter, vectorised parameter streams) against the per-sample
torchvision.transforms.v2 path (MonoDataset[i], i.e. workers.data.augment.augment + to_input),
same indices, same parameters, same output (normalised float batch).

    python -m bench.augment            # CPU here; on a GPU box the batched path runs on the GPU
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch

from bench import common
from bench.common import interleaved, median, parser, ratio, report, setup, table
from contract.augmentation import AugmentConfig
from contract.images import bundled_photos, sha256_file
from contract.jobs import ImageFile
from workers.data.batch_augment import BatchAugmenter
from workers.data.batch_params import draw_params, draw_params_reference
from workers.data.mono import MonoDataset, load_images

BASELINE = "per-sample v2 (MonoDataset[i])"


def one_size(
    size: int, images: list[torch.Tensor], args: argparse.Namespace, device: str, repeats: int
) -> tuple[list[list[Any]], list[dict[str, Any]]]:
    """The table rows and JSON rows of one network input size (the generator, stage 1, makes
    samples of generated_size(size): 73 px at 64, 256 at 224)."""
    config = AugmentConfig(preset="full")  # the paper's: every op on
    batch = 16 if args.tiny else (256 if size <= 64 else 128)
    indices = np.arange(batch) + 10_000
    dataset = MonoDataset(images, config, size, length=10**6, seed=0)
    eager = BatchAugmenter(images, config, dataset.generated, seed=0, device=device)
    cases = {
        BASELINE: lambda: torch.stack([dataset[int(i)] for i in indices]),
        "batched": lambda: eager(indices, normalised=True),
    }
    if not (args.tiny or args.no_compile):
        compiled = BatchAugmenter(
            images, config, dataset.generated, seed=0, device=device, compiled=True
        )
        for b in (batch, batch - 1):  # compile (dynamic shapes) outside the timing
            compiled(indices[:b])
        cases["batched, compiled tail"] = lambda: compiled(indices, normalised=True)
    times = interleaved(cases, repeats, warmup=1, device=device)
    walls = dict(common.wall_times)
    rows, results = [], []
    for name, t in times.items():
        row = {
            "size": size,
            "batch": batch,
            "case": name,
            "device": "cpu" if name == BASELINE else device,
            "ms_per_batch": 1e3 * median(t),
            "samples_per_s": batch / median(t),
            "speedup": ratio(times[BASELINE], t),
            "wall_ms_per_batch": 1e3 * median(walls[name]),
            "wall_speedup": ratio(walls[BASELINE], walls[name]),
        }
        results.append(row)
        rows.append([size, batch, name, row["device"], row["ms_per_batch"], row["samples_per_s"],
                     row["speedup"], row["wall_speedup"]])  # fmt: skip
    # The parameter draws alone: vectorised streams vs one op_rng Generator per op and sample.
    shapes = [tuple(images[0].shape[-2:])]
    t = interleaved(
        {
            "op_rng per sample": lambda: draw_params_reference(config, shapes, 0, indices),
            "vectorised streams": lambda: draw_params(config, shapes, 0, indices),
        },
        repeats,
    )
    ours, theirs = t["vectorised streams"], t["op_rng per sample"]
    results.append({
        "size": size, "batch": batch, "case": "parameter draws only",
        "speedup": ratio(theirs, ours),
        "us_per_sample": 1e6 * median(ours) / batch,
        "baseline_us_per_sample": 1e6 * median(theirs) / batch,
    })  # fmt: skip
    walls = common.wall_times
    rows.append([size, batch, "parameter draws only (vectorised vs op_rng)", "cpu",
                 1e3 * median(ours), batch / median(ours), ratio(theirs, ours),
                 ratio(walls["op_rng per sample"], walls["vectorised streams"])])  # fmt: skip
    return rows, results


def main(argv: list[str] | None = None) -> None:
    p = parser("augment", __doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile'd tail case")
    args = p.parse_args(argv)
    device = setup(args)
    repeats = args.repeats or (2 if args.tiny else 5)
    photo = bundled_photos()["astronaut"]
    images = load_images((ImageFile(path=str(photo), sha256=sha256_file(photo)),))  # (3, 512, 512)
    rows, results = [], []
    for size in [64] if args.tiny else args.sizes:
        more_rows, more_results = one_size(size, images, args, device, repeats)
        rows += more_rows
        results += more_results
    text = table(
        "Mono dataset throughput (preset full, astronaut 512 px)",
        ["size px", "batch", "case", "device", "ms / batch", "samples / s", "x vs per-sample",
         "x (wall clock)"],
        rows,
    )  # fmt: skip
    report("augment", args, device, text, {"rows": results})


if __name__ == "__main__":
    main()
