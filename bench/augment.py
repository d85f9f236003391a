"""Mono dataset throughput: the production training data path (`view.batch(indices, device)`:
stage 1 by workers.data.batch_augment, stage 2 by workers.data.batch_loader, both batched on
the device) against the per-sample path fit used before (`LoaderView[i]`: augment + load +
to_input per sample, stacked), same indices, same draws, a normalised float batch each; and,
at 224 px, the data path's rate against the rate the trunk consumes samples (AlexNet width 1,
forward + backward).

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
from contract.methods import RotNetConfig
from contract.network import NetworkConfig
from workers.data.batch_augment import BatchAugmenter
from workers.data.batch_params import draw_params, draw_params_reference
from workers.data.mono import MonoDataset, load_images
from workers.models.alexnet import build_trunk

BASELINE = "per-sample (LoaderView[i], stacked)"
BATCHED = "batched (view.batch, production)"
TRUNK_BATCH = 64


def one_size(
    size: int, images: list[torch.Tensor], args: argparse.Namespace, device: str, repeats: int
) -> tuple[list[list[Any]], list[dict[str, Any]]]:
    """The table rows and JSON rows of one network input size (the generator, stage 1, makes
    samples of generated_size(size): 73 px at 64, 256 at 224; RotNet's loader crops them)."""
    config = AugmentConfig(preset="full")  # the paper's: every op on
    batch = 16 if args.tiny else (256 if size <= 64 else 128)
    indices = np.arange(batch) + 10_000
    loader = RotNetConfig().loader  # RandomResizedCrop + flip, as DeepCluster's
    dataset = MonoDataset(images, config, size, length=10**6, seed=0, loader=loader)
    view, dev = dataset.at_epoch(0), torch.device(device)
    cases = {
        BASELINE: lambda: torch.stack([view[int(i)] for i in indices]),
        BATCHED: lambda: view.batch(indices, dev),
    }
    if not (args.tiny or args.no_compile):
        compiled = MonoDataset(images, config, size, length=10**6, seed=0, loader=loader)
        compiled.augmenters[dev] = BatchAugmenter(
            images, config, compiled.generated, seed=0, device=device, compiled=True
        )
        compiled_view = compiled.at_epoch(0)
        for b in (batch, batch - 1):  # compile (dynamic shapes) outside the timing
            compiled_view.batch(indices[:b], dev)
        cases["batched, stage 1's tail compiled"] = lambda: compiled_view.batch(indices, dev)
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
    rows.append([size, batch, "stage 1 parameter draws only (vectorised vs op_rng)", "cpu",
                 1e3 * median(ours), batch / median(ours), ratio(theirs, ours),
                 ratio(walls["op_rng per sample"], walls["vectorised streams"])])  # fmt: skip
    return rows, results


def data_against_trunk(
    size: int, images: list[torch.Tensor], args: argparse.Namespace, device: str, repeats: int
) -> tuple[list[list[Any]], dict[str, Any]]:
    """Samples/s of the production data path (both stages) and samples/s the trunk consumes
    (forward + backward of AlexNet, width 1 (--tiny: 0.25), a batch of TRUNK_BATCH (--tiny: 4)),
    timed in one interleaved run; their ratio is how many trunks one data path keeps fed."""
    batch, width = (4, 0.25) if args.tiny else (TRUNK_BATCH, 1.0)
    config, loader = AugmentConfig(preset="full"), RotNetConfig().loader
    dataset = MonoDataset(images, config, size, length=10**6, seed=0, loader=loader)
    view, dev = dataset.at_epoch(0), torch.device(device)
    trunk = build_trunk(NetworkConfig(width=width, input_size=size)).to(dev).train()
    x = torch.randn(batch, 3, size, size, device=dev)
    indices = np.arange(batch) + 20_000

    def trunk_step() -> None:
        trunk.zero_grad(set_to_none=True)
        trunk(x).sum().backward()

    t = interleaved(
        {"data": lambda: view.batch(indices, dev), "trunk": trunk_step},
        repeats, warmup=1, device=device,
    )
    data, consumed = batch / median(t["data"]), batch / median(t["trunk"])
    result = {
        "size": size, "batch": batch, "width": width, "data_samples_per_s": data,
        "trunk_samples_per_s": consumed, "data_over_trunk": ratio(t["trunk"], t["data"]),
    }  # fmt: skip
    rows = [
        [size, batch, f"trunk fwd + bwd (AlexNet, width {width:g})", device,
         1e3 * median(t["trunk"]), consumed, "", ""],
        [size, batch, "data path over trunk (samples/s ratio)", device, "", "",
         result["data_over_trunk"], ""],
    ]  # fmt: skip
    return rows, result


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
    more_rows, against = data_against_trunk(64 if args.tiny else 224, images, args, device, repeats)
    rows += more_rows
    text = table(
        "Mono training data path (preset full, RotNet's loader, astronaut 512 px)",
        ["size px", "batch", "case", "device", "ms / batch", "samples / s", "x vs per-sample",
         "x (wall clock)"],
        rows,
    )  # fmt: skip
    report("augment", args, device, text, {"rows": results, "data_against_trunk": against})


if __name__ == "__main__":
    main()
