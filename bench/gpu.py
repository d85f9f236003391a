"""GPU-only: (1) RotNet pre-training throughput at 224 px (the paper's AlexNet-BN, width 1):
bf16 autocast, channels_last and torch.compile against fp32 eager, with model FLOP utilisation
(FLOPs counted by torch's FlopCounterMode) and the training data path's share of a step (both
stages of the mono dataset, batched on the device, as training makes its batches);
(2) the probe data path: a folder of real JPEGs decoded on the GPU in batches
(torchvision.io.decode_jpeg on CUDA) with crops and flips on the device, against CPU decoding
and the per-sample transform.

On a machine without CUDA it says so and writes a `skipped` JSON, unless `--device cpu` asks
for the same code run small on the CPU (a check that it runs, not a measurement).

    python -m bench.gpu
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.common import interleaved, median, parser, ratio, report, setup, skipped, table
from contract.augmentation import AugmentConfig
from contract.images import bundled_photos, sha256_file
from contract.jobs import ImageFile
from contract.methods import RotNetConfig
from contract.network import NetworkConfig
from workers.data.batch_augment import normalise
from workers.data.crop_boxes import crop_box
from workers.data.mono import MonoDataset, load_images
from workers.data.probe_sets import train_inputs
from workers.methods.rotnet import RotNet
from workers.models.alexnet import build_trunk

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


def peak_flops(name: str) -> float | None:
    for key, peak in BF16_PEAK.items():
        if key in name:
            return peak
    return None


def rotnet(size: int, width: float, device: str, channels_last: bool) -> RotNet:
    network = NetworkConfig(width=width, input_size=size)
    method = RotNet(RotNetConfig(), build_trunk(network), size).to(device)
    return method.to(memory_format=torch.channels_last) if channels_last else method


def step_fn(method: RotNet, batch: torch.Tensor, bf16: bool, compiled: bool):
    """One SGD step of RotNet on `batch` (B, 3, S, S): forward of 4B rotated images, backward."""
    optimizer = torch.optim.SGD(method.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    if compiled:  # the modules, in place: training_step (rotations, loss) stays as it is
        method.trunk.compile()
        method.head.compile()

    def step() -> None:
        with torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = method.training_step(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def flops_per_step(method: RotNet, batch: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        loss, _ = method.training_step(batch)
        loss.backward()
    method.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def pretraining(device: str, tiny: bool, repeats: int) -> tuple[list[list[Any]], dict[str, Any]]:
    size, width, batch = (64, 0.25, 8) if tiny else (224, 1.0, 192)
    steps = 2 if tiny else 10
    torch.backends.cudnn.benchmark = (
        False  # what workers.training.device() sets: deterministic kernels
    )
    torch.backends.cudnn.deterministic = True
    x = torch.randn(batch, 3, size, size, device=device)
    variants = {
        "fp32 eager": (False, False, False),
        "bf16 autocast": (True, False, False),
        "bf16 + channels_last": (True, True, False),
    }
    if not tiny:
        variants["bf16 + channels_last + compile"] = (True, True, True)
    cases, flops = {}, None
    for name, (bf16, cl, compiled) in variants.items():
        method = rotnet(size, width, device, cl)
        inputs = x.contiguous(memory_format=torch.channels_last) if cl else x
        if flops is None:
            flops = flops_per_step(method, inputs)
        step = step_fn(method, inputs, bf16, compiled)

        def run(step=step) -> None:
            for _ in range(steps):
                step()

        cases[name] = run
    t = interleaved(cases, repeats, warmup=2, device=device)
    base = t["fp32 eager"]
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    peak = peak_flops(name)
    rows, results = (
        [],
        {
            "batch": batch,
            "size": size,
            "width": width,
            "flops_per_step": flops,
            "flops_per_image_fwd_bwd": flops / (4 * batch),
            "device_name": name,
            "peak_bf16": peak,
            "cases": {},
        },
    )
    for case, times in t.items():
        per_step = median(times) / steps
        mfu = flops / per_step / peak if peak else None
        results["cases"][case] = {
            "s_per_step": per_step,
            "images_per_s": 4 * batch / per_step,
            "speedup": ratio(base, times),
            "mfu": mfu,
        }
        rows.append(
            [
                f"pretrain step: {case}",
                f"{4 * batch / per_step:,.0f} img/s",
                ratio(base, times),
                f"{100 * mfu:.1f}%" if mfu else "n/a",
            ]
        )
    # The data path's share: a training batch of mono samples (stage 1 at generated_size px,
    # then RotNet's loader crop to `size`) made on the device, as fit makes it.
    photo = bundled_photos()["astronaut"]
    images = load_images((ImageFile(path=str(photo), sha256=sha256_file(photo)),))
    mono = MonoDataset(
        images, AugmentConfig(preset="full"), size, 10**6, seed=0, loader=RotNetConfig().loader
    )
    view, dev = mono.at_epoch(0), torch.device(device)
    indices = np.arange(batch)
    fastest = min(results["cases"].values(), key=lambda c: c["s_per_step"])["s_per_step"]
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
    results["data_s_per_batch"] = median(a)
    results["data_samples_per_s"] = rate
    results["gpu_busy_fraction_serial"] = 1 - share
    rows.append(
        [
            f"training data path at {size} px (both stages), {len(big)} per call"
            " (target 50,000/s on an H100)",
            f"{rate:,.0f} samples/s",
            "",
            "",
        ]
    )
    rows.append(
        [
            f"  its share of a training step ({batch} samples, done serially)",
            f"{100 * share:.1f}%",
            "",
            f"GPU busy {100 * (1 - share):.0f}% of the loop",
        ]
    )
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
    rows, results = pretraining(device, args.tiny, repeats)
    more, results["decode"] = decoding(device, args.tiny, repeats)
    rows += more
    name = (
        torch.cuda.get_device_name() if device.startswith("cuda") else "CPU (code-path check only)"
    )
    text = table(
        f"GPU: pre-training and the probe data path ({name})",
        ["what", "rate", "x vs baseline", "note"],
        rows,
    )
    report("gpu", args, device, text, results)


if __name__ == "__main__":
    main()
