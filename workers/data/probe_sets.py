"""Labelled probe datasets, as uint8 image tensors in memory, and their input pipelines.

Fashion-MNIST from its four IDX files (Debian's `dataset-fashion-mnist` puts them in
/usr/share/datasets/fashion-mnist); CIFAR-10/100 from torchvision's python-pickle layout
under a data root. Nothing is downloaded here: a missing root is an error naming it.
"""

from __future__ import annotations

import gzip
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from workers.data.augment import crop_box, to_input


@dataclass(frozen=True)
class ProbeSplit:
    images: torch.Tensor  # uint8 (n, C, H, W), C in {1, 3}
    labels: torch.Tensor  # int64 (n,)
    classes: int


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    _, dtype, dims = struct.unpack(">HBB", data[:4])
    shape = struct.unpack(f">{dims}I", data[4 : 4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"no {stem}[.gz] in {root}")


def fashion_mnist(root: Path, train: bool) -> ProbeSplit:
    prefix = "train" if train else "t10k"
    images = _read_idx(_find(root, f"{prefix}-images-idx3-ubyte"))
    labels = _read_idx(_find(root, f"{prefix}-labels-idx1-ubyte"))
    return ProbeSplit(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)), 10)


def cifar(root: Path, train: bool, classes: int) -> ProbeSplit:
    from torchvision.datasets import CIFAR10, CIFAR100

    dataset = (CIFAR10 if classes == 10 else CIFAR100)(str(root), train=train, download=False)
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()  # (n, 3, 32, 32)
    return ProbeSplit(images, torch.tensor(dataset.targets, dtype=torch.int64), classes)


def load_split(name: str, root: str, train: bool) -> ProbeSplit:
    """Raises FileNotFoundError naming the root when the data is not there."""
    path = Path(root)
    if not path.is_dir():
        raise FileNotFoundError(f"probe dataset {name!r}: no data root at {path}")
    if name == "fashion_mnist":
        return fashion_mnist(path, train)
    if name in ("cifar10", "cifar100"):
        return cifar(path, train, 10 if name == "cifar10" else 100)
    raise ValueError(f"unknown probe dataset {name!r}")


def stratified_subset(labels: torch.Tensor, size: int | None, seed: int = 0) -> torch.Tensor:
    """Indices of `size` samples, as equal per class as possible (all when size is None)."""
    if size is None or size >= len(labels):
        return torch.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = labels.unique().tolist()
    per_class = math.ceil(size / len(classes))
    picked = [rng.permutation(np.flatnonzero(labels.numpy() == c))[:per_class] for c in classes]
    chosen = np.sort(np.concatenate(picked))
    return torch.from_numpy(rng.permutation(chosen)[:size]).sort().values


def eval_inputs(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (B, C, h, w) -> normalised float (B, 3, size, size): resize, grey -> RGB."""
    x = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    return to_input(x.clamp(0, 255).round().to(torch.uint8))


def train_inputs(images: torch.Tensor, size: int, rng: np.random.Generator) -> torch.Tensor:
    """The probe's train augmentation: RandomResizedCrop(size) + horizontal flip, per sample."""
    out = []
    for image in images:
        top, left, h, w = crop_box(image.shape[1], image.shape[2], (0.08, 1.0), (3 / 4, 4 / 3), rng)
        crop = TF.resized_crop(image, top, left, h, w, [size, size], InterpolationMode.BILINEAR, antialias=True)
        out.append(TF.horizontal_flip(crop) if rng.random() < 0.5 else crop)
    x = torch.stack(out)
    return to_input(x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x)
