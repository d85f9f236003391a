"""Linear probes: (1) all five layers from one trunk pass against one pass per layer (each
stopping at its layer, as a one-layer job would), for the trunk alone and for a whole asano2020
training epoch (data pipeline, trunk, heads); (2) the `fast` preset's cached features against
recomputing the same features every epoch. Fashion-MNIST, the paper's AlexNet (width 1).

    python -m bench.probes
"""

from __future__ import annotations

import torch

from bench.common import interleaved, median, parser, ratio, report, setup, table
from contract.compute import ComputeConfig
from contract.datasets import DEFAULT_DATA_ROOTS, LAYERS
from contract.evaluations import ProbeConfig
from workers.compute import Compute
from workers.data.probe_sets import eval_views, load_split, stratified_subset, subset
from workers.models.alexnet import AlexNet
from workers.probes import (
    LinearProbes,
    ProbeTrainer,
    extract,
    feature_shapes,
    pool_taps,
    single_view,
)


def flop_bound(trunk: AlexNet, x: torch.Tensor) -> float:
    """The best one pass can do against passes that stop at their layer: sum over layers of
    the FLOPs up to that layer, over the FLOPs up to conv5 (torch's FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    def flops(layers: tuple[str, ...]) -> int:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            trunk.taps(x, layers)
        return counter.get_total_flops()

    return sum(flops((layer,)) for layer in LAYERS) / flops(LAYERS)


def main(argv: list[str] | None = None) -> None:
    p = parser("probes", __doc__.splitlines()[0])
    p.add_argument(
        "--size", type=int, default=64, help="input px (224 is the paper's; slow on a CPU)"
    )
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--samples", type=int, default=None, help="train images per epoch")
    p.add_argument("--data-root", default=DEFAULT_DATA_ROOTS["fashion_mnist"])
    args = p.parse_args(argv)
    device = setup(args)
    dev = torch.device(device)
    compute = Compute(ComputeConfig(), dev)  # fp32 eager, as the probes compute by default
    tiny = args.tiny
    repeats = args.repeats or (1 if tiny else 3)
    samples = args.samples or (64 if tiny else (768 if device == "cpu" else 20_000))
    size, width = (64, 0.25) if tiny else (args.size, args.width)
    train = load_split("fashion_mnist", args.data_root, train=True)
    train = subset(train, stratified_subset(train.labels, samples))
    trunk = AlexNet(width=width).to(dev).eval()
    shapes = feature_shapes(trunk, size, LAYERS)
    rows, results = [], {}

    # (1a) The trunk alone on one batch.
    x = eval_views(train.images[:128], size, "resize")[0].to(dev)  # (B, 3, S, S)

    @torch.no_grad()
    def one_pass() -> None:
        pool_taps(trunk.taps(x, LAYERS))

    @torch.no_grad()
    def per_layer() -> None:
        for layer in LAYERS:
            pool_taps(trunk.taps(x, (layer,)))

    @torch.no_grad()
    def per_layer_full() -> None:  # a one-layer job that runs the whole trunk (a forward hook)
        for layer in LAYERS:
            pool_taps({layer: trunk.taps(x, LAYERS)[layer]})

    t = interleaved(
        {"per layer": per_layer, "per layer, full trunk": per_layer_full, "one pass": one_pass},
        repeats=max(repeats, 5),
        device=device,
    )
    bound = flop_bound(trunk, x[:1])
    results["trunk"] = {
        "speedup": ratio(t["per layer"], t["one pass"]),
        "ms_one_pass": 1e3 * median(t["one pass"]),
        "ms_per_layer": 1e3 * median(t["per layer"]),
        "batch": len(x),
        "flop_bound": bound,
        "speedup_vs_full_trunk_per_layer": ratio(t["per layer, full trunk"], t["one pass"]),
        "ms_per_layer_full_trunk": 1e3 * median(t["per layer, full trunk"]),
    }
    rows.append(
        [
            f"trunk, 5 layers: vs 5 passes each stopping at its layer (FLOP bound {bound:.2f}x)",
            f"batch {len(x)}",
            1e3 * median(t["per layer"]),
            1e3 * median(t["one pass"]),
            results["trunk"]["speedup"],
        ]
    )
    rows.append(
        [
            "trunk forward, 5 layers: vs 5 full-trunk passes (a hook per layer)",
            f"batch {len(x)}",
            1e3 * median(t["per layer, full trunk"]),
            1e3 * median(t["one pass"]),
            results["trunk"]["speedup_vs_full_trunk_per_layer"],
        ]
    )

    # (1b) A whole asano2020 training epoch: five heads on one pass vs five one-head jobs.
    config = ProbeConfig(preset="asano2020")

    def trainer(layers: tuple[str, ...]) -> ProbeTrainer:
        heads = LinearProbes({layer: shapes[layer] for layer in layers}, train.classes).to(dev)
        return ProbeTrainer(trunk, heads, config, size, seed=0, compute=compute)

    t = interleaved(
        {
            "per layer": lambda: [
                trainer((layer,)).train_epoch(0, train, None) for layer in LAYERS
            ],
            "one pass": lambda: trainer(LAYERS).train_epoch(0, train, None),
        },
        repeats,
        warmup=0 if tiny else 1,
        device=device,
    )
    results["epoch"] = {
        "speedup": ratio(t["per layer"], t["one pass"]),
        "s_one_pass": median(t["one pass"]),
        "s_per_layer": median(t["per layer"]),
        "samples": samples,
    }
    rows.append(
        [
            "asano2020 train epoch (augment + trunk + heads)",
            f"{samples} images",
            1e3 * median(t["per layer"]),
            1e3 * median(t["one pass"]),
            results["epoch"]["speedup"],
        ]
    )

    # (2) fast preset: features extracted once then E epochs from the cache, against the same
    # single-view features recomputed every epoch.
    fast = ProbeConfig(preset="fast", epochs=2 if tiny else 12)
    recompute = ProbeConfig(preset="fast", epochs=fast.epochs, cache_features=False)
    view = single_view(fast.test_crops)

    def cached() -> None:
        cache = extract(trunk, train, size, LAYERS, 512, compute, view)
        job = ProbeTrainer(trunk, LinearProbes(shapes, train.classes).to(dev), fast, size, 0, compute)
        for epoch in range(fast.epochs):
            job.train_epoch(epoch, train, cache)

    def recomputed() -> None:
        job = ProbeTrainer(
            trunk, LinearProbes(shapes, train.classes).to(dev), recompute, size, 0, compute
        )
        for epoch in range(recompute.epochs):
            job.train_epoch(epoch, train, None)

    t = interleaved({"recompute": recomputed, "cached": cached}, repeats, warmup=0, device=device)
    results["cache"] = {
        "speedup": ratio(t["recompute"], t["cached"]),
        "s_cached": median(t["cached"]),
        "s_recompute": median(t["recompute"]),
        "epochs": fast.epochs,
        "samples": samples,
    }
    rows.append(
        [
            f"fast preset, {fast.epochs} epochs: cached features vs recomputed",
            f"{samples} images",
            1e3 * median(t["recompute"]),
            1e3 * median(t["cached"]),
            results["cache"]["speedup"],
        ]
    )

    text = table(
        f"Linear probes (AlexNet-BN width {width}, {size} px input, Fashion-MNIST)",
        ["what", "data", "baseline ms", "ours ms", "x faster"],
        rows,
    )
    report("probes", args, device, text, results)


if __name__ == "__main__":
    main()
