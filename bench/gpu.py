"""GPU-only: (1) production's own steps, timed for each compute setting (contract.compute:
fp32 eager, bf16 autocast, bf16 + channels_last, + torch.compile of the trunk) against fp32
eager, with model FLOP utilisation (the estimate's FLOPs, workers.costs, over the card's dense
bf16 peak): training.train_step (what fit runs per step) on RotNet at 224 px, the paper's
AlexNet-BN at width 1, batch 192 x 4 rotations; and the probes' step (view_features through the
frozen trunk to conv5, then ProbeTrainer.step of the five heads, asano2020, 1000 classes);
(2) the training data path's share of a step (both stages of the mono dataset, batched on the
device, as training makes its batches); (3) the probe data path: a folder of real JPEGs decoded
on the GPU in batches (torchvision.io.decode_jpeg on CUDA) with crops and flips on the device,
against CPU decoding and the per-sample transform.

On a GPU it ends with the MEASURED_MFU entries for orchestrator/estimate.py (what `monosweep
plan --estimate` and `run --max-gpu-hours` then use instead of their assumption). On a machine
without CUDA it says so and writes a `skipped` JSON, unless `--device cpu` asks for the same
code run small on the CPU (a check that it runs, not a measurement; `--tiny` leaves compile out,
whose C++ build takes a minute on a CPU).

    python -m bench.gpu
"""

from __future__ import annotations

import datetime
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.common import interleaved, median, parser, ratio, report, setup, skipped, table
from contract.augmentation import AugmentConfig
from contract.compute import ComputeConfig
from contract.datasets import LAYERS
from contract.evaluations import ProbeConfig
from contract.images import bundled_photos, sha256_file
from contract.jobs import ImageFile
from contract.methods import RotNetConfig
from contract.network import NetworkConfig
from workers import costs
from workers.compute import Compute
from workers.data.batch_augment import normalise
from workers.data.crop_boxes import crop_box
from workers.data.mono import MonoDataset, load_images
from workers.data.probe_sets import train_inputs
from workers.methods.rotnet import RotNet
from workers.models.alexnet import build_trunk
from workers.probes import LinearProbes, ProbeTrainer, feature_shapes, view_features
from workers.training import Loop, train_step

# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, by device name.
BF16_PEAK = {
    "H200": 989e12,
    "H100 SXM": 989e12,
    "H100 80GB HBM3": 989e12,
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
}
# The settings timed, the first the baseline.
SETTINGS = (
    ComputeConfig(),
    ComputeConfig(precision="bf16", channels_last=False),
    ComputeConfig(precision="bf16"),  # channels_last, bf16's default
    ComputeConfig(precision="bf16", compile=True),
)
CLASSES = 1000  # the probes' heads at ImageNet's classes, as the paper grid probes


def peak_flops(name: str) -> float | None:
    for key, peak in BF16_PEAK.items():
        if key in name:
            return peak
    return None


def shapes(tiny: bool) -> tuple[NetworkConfig, int, int]:
    """(network, batch, steps per timed call): the paper's at 224 px, or a small one."""
    if tiny:
        return NetworkConfig(width=0.25, input_size=64), 8, 2
    return NetworkConfig(), 192, 10


def pretrain_steps(config: ComputeConfig, dev: torch.device, tiny: bool) -> Callable[[], None]:
    """`steps` of training.train_step, what fit runs per step (autocast, the loss's sync and
    check, backward, SGD), on RotNet prepared by the compute setting, on a batch kept on the
    device (the data path is timed apart)."""
    network, batch, steps = shapes(tiny)
    torch.manual_seed(0)
    method = RotNet(RotNetConfig(), build_trunk(network), network.input_size).to(dev)
    compute = Compute(config, dev)
    compute.prepare(method, method.trunk)
    optimizers = method.configure_optimizers()
    loop = Loop(seed=0, epochs=1, batch_size=batch, lr=method.config.lr, schedule=method.config.schedule)
    x = torch.randn(batch, 3, network.input_size, network.input_size, device=dev)

    def run() -> None:
        for step in range(steps):
            train_step(method, optimizers, x, compute, step, loop)

    return run


def probe_steps(config: ComputeConfig, dev: torch.device, tiny: bool) -> Callable[[], None]:
    """`steps` of the asano2020 probes' step as ProbeTrainer.train_epoch runs it on a batch:
    view_features through the frozen trunk (its five taps pooled), then `step` of the heads."""
    network, batch, steps = shapes(tiny)
    torch.manual_seed(0)
    trunk = build_trunk(network).to(dev).eval()
    size = network.input_size
    pooled = feature_shapes(trunk, size, LAYERS)
    compute = Compute(config, dev)
    compute.prepare(trunk, trunk)
    trainer = ProbeTrainer(trunk, LinearProbes(pooled, CLASSES).to(dev), ProbeConfig(preset="asano2020"), size, 0,
                           compute)
    views = torch.randn(1, batch, 3, size, size, device=dev)  # (V = 1, B, 3, S, S)
    labels = torch.randint(0, CLASSES, (batch,), device=dev)

    def run() -> None:
        for _ in range(steps):
            trainer.step(view_features(trunk, views, LAYERS, compute), labels)

    return run


def step_flops(tiny: bool) -> dict[str, float]:
    """FLOPs of one pretrain step and one probe step, as the estimate counts them (workers.costs
    on the same modules, on the meta device): the numerator of every MFU here."""
    network, batch, _ = shapes(tiny)
    heads, _ = costs.probe_heads(network, LAYERS, CLASSES, ProbeConfig(preset="asano2020"))
    return {
        "pretrain": batch * costs.pretrain(RotNetConfig(), network, None).flops,
        "probe": batch * (costs.trunk_pass(network, LAYERS).flops + heads.flops),
    }


def steps(device: str, tiny: bool, repeats: int) -> tuple[list[list[Any]], dict[str, Any]]:
    """Both steps under every setting, each against fp32 eager in the same run."""
    network, batch, calls = shapes(tiny)
    dev = torch.device(device)
    # What workers.training.device() sets: deterministic kernels, as production runs.
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    settings = [s for s in SETTINGS if not (tiny and s.compile)]
    flops = step_flops(tiny)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    peak = peak_flops(name)
    results: dict[str, Any] = {
        "batch": batch, "size": network.input_size, "width": network.width, "flops_per_step": flops,
        "device_name": name, "peak_bf16": peak, "cases": {}, "probe_cases": {},
    }
    rows: list[list[Any]] = []
    images = {"pretrain": 4 * batch, "probe": batch}  # RotNet's four rotations of each sample
    for stage, build, key in (("pretrain", pretrain_steps, "cases"), ("probe", probe_steps, "probe_cases")):
        t = interleaved({s.label: build(s, dev, tiny) for s in settings}, repeats, warmup=2, device=device)
        base = t[settings[0].label]
        for label, times in t.items():
            per_step = median(times) / calls
            mfu = flops[stage] / per_step / peak if peak else None
            results[key][label] = {
                "s_per_step": per_step, "images_per_s": images[stage] / per_step, "speedup": ratio(base, times),
                "mfu": mfu,
            }
            rows.append([f"{stage} step: {label}", f"{images[stage] / per_step:,.0f} img/s", ratio(base, times),
                         f"MFU {100 * mfu:.1f}%" if mfu else "MFU n/a (no bf16 peak)"])
    return rows, results


def measured_mfu(results: dict[str, Any]) -> list[str]:
    """The lines to paste into orchestrator/estimate.py's MEASURED_MFU (the pretrain step's MFU
    per setting: the estimate's jobs are mostly pre-training), or why there are none."""
    if not results["peak_bf16"]:
        return ["MEASURED_MFU: no bf16 peak for this device (a CPU): on a GPU, `python -m bench.gpu` prints here "
                "the entries for orchestrator/estimate.py"]
    card, day = results["device_name"], datetime.date.today().isoformat()
    return ["MEASURED_MFU entries for orchestrator/estimate.py:"] + [
        f'    "{label}": Measured({case["mfu"]:.3f}, "{card}", "{day}"),' for label, case in results["cases"].items()
    ]


def data_path(device: str, tiny: bool, repeats: int, fastest: float) -> tuple[list[list[Any]], dict[str, Any]]:
    """The data path's share: a training batch of mono samples (stage 1 at generated_size px,
    then RotNet's loader crop to the input size) made on the device, as fit makes it, against
    the fastest pretrain step (`fastest` seconds)."""
    network, batch, _ = shapes(tiny)
    size = network.input_size
    photo = bundled_photos()["astronaut"]
    images = load_images((ImageFile(path=str(photo), sha256=sha256_file(photo)),))
    mono = MonoDataset(
        images, AugmentConfig(preset="full"), size, 10**6, seed=0, loader=RotNetConfig().loader
    )
    view, dev = mono.at_epoch(0), torch.device(device)
    indices = np.arange(batch)
    big = np.arange(16 if tiny else 2048)
    t = interleaved(
        {
            "step batch": lambda: view.batch(indices, dev),
            "large batch": lambda: view.batch(big, dev),
        },
        repeats,
        warmup=2,
        device=device,
    )
    a = t["step batch"]
    share = median(a) / (median(a) + fastest)
    rate = len(big) / median(t["large batch"])
    results = {"data_s_per_batch": median(a), "data_samples_per_s": rate, "gpu_busy_fraction_serial": 1 - share}
    rows = [
        [
            f"training data path at {size} px (both stages), {len(big)} per call"
            " (target 50,000/s on an H100)",
            f"{rate:,.0f} samples/s",
            "",
            "",
        ],
        [
            f"  its share of a training step ({batch} samples, done serially)",
            f"{100 * share:.1f}%",
            "",
            f"GPU busy {100 * (1 - share):.0f}% of the loop",
        ],
    ]
    return rows, results


def jpeg_folder(folder: Path, count: int) -> list[Path]:
    """`count` real JPEGs at ImageNet sizes (about 500 x 375): crops of the bundled photos,
    re-encoded at quality 90."""
    from PIL import Image

    rng = np.random.default_rng(0)
    photos = [Image.open(p).convert("RGB") for p in bundled_photos().values()]
    paths = []
    for i in range(count):
        photo = photos[i % len(photos)]
        w, h = photo.size
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        image = photo.crop((left, top, left + cw, top + ch)).resize(
            (500, 375) if i % 3 else (375, 500)
        )
        path = folder / f"{i:05d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def device_crops(images: list[torch.Tensor], size: int, rng: np.random.Generator) -> torch.Tensor:
    """RandomResizedCrop(size) + flip of decoded uint8 images already on the device."""
    out = []
    for image in images:
        top, left, h, w = crop_box(image.shape[1], image.shape[2], (0.08, 1.0), (3 / 4, 4 / 3), rng)
        crop = image[None, :, top : top + h, left : left + w].float()
        crop = F.interpolate(
            crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out.append(crop.flip(-1) if rng.random() < 0.5 else crop)
    return normalise(torch.cat(out) / 255)


def decoding(device: str, tiny: bool, repeats: int) -> tuple[list[list[Any]], dict[str, Any]]:
    from torchvision.io import decode_jpeg, read_file

    count, size = (8, 64) if tiny else (256, 224)
    with tempfile.TemporaryDirectory() as tmp:
        paths = jpeg_folder(Path(tmp), count)

        def cpu_path() -> None:
            rng = np.random.default_rng(0)
            images = [decode_jpeg(read_file(str(p))) for p in paths]
            train_inputs(images, size, rng)

        def gpu_path() -> None:
            rng = np.random.default_rng(0)
            data = [read_file(str(p)) for p in paths]
            images = decode_jpeg(data, device=device)
            device_crops(images, size, rng)

        t = interleaved(
            {"cpu decode + per-sample crops": cpu_path, "device decode + crops": gpu_path},
            repeats,
            warmup=1,
            device=device,
        )
    base, ours = t["cpu decode + per-sample crops"], t["device decode + crops"]
    rate = count / median(ours)
    hours = 36 * 1_281_167 / rate / 3600
    results = {
        "images": count,
        "cpu_images_per_s": count / median(base),
        "device_images_per_s": rate,
        "speedup": ratio(base, ours),
        "asano2020_36_epochs_imagenet_hours_data_only": hours,
    }
    rows = [
        [
            f"JPEG decode + RandomResizedCrop + flip ({count} files, ~500x375)",
            f"{rate:,.0f} img/s",
            ratio(base, ours),
            f"36 epochs of ImageNet: {hours:.1f} h of decoding",
        ]
    ]
    return rows, results


def main(argv: list[str] | None = None) -> None:
    p = parser("gpu", __doc__.splitlines()[0])
    args = p.parse_args(argv)
    device = setup(args)
    if not device.startswith("cuda") and args.device != "cpu":
        skipped(
            "gpu",
            args,
            device,
            "no CUDA device on this machine (pass --device cpu to check the code path)",
        )
        return
    repeats = args.repeats or (1 if args.tiny else 5)
    rows, results = steps(device, args.tiny, repeats)
    fastest = min(c["s_per_step"] for c in results["cases"].values())
    more, results["data"] = data_path(device, args.tiny, repeats, fastest)
    rows += more
    more, results["decode"] = decoding(device, args.tiny, repeats)
    rows += more
    name = (
        torch.cuda.get_device_name() if device.startswith("cuda") else "CPU (code-path check only)"
    )
    text = table(
        f"GPU: production's pretrain and probe steps per compute setting, the data paths ({name})",
        ["what", "rate", "x vs baseline (fp32 eager; CPU decoding)", "note"],
        rows,
    )
    results["measured_mfu"] = measured_mfu(results)
    report("gpu", args, device, text + "\n\n" + "\n".join(results["measured_mfu"]), results)


if __name__ == "__main__":
    main()
