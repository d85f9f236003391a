"""Labelled datasets (probe sets, and the train splits of supervised pre-training and of
image draws), and their input pipelines.

Each loads from a data root in its usual on-disk layout; nothing is downloaded here, and a
missing root is an error naming it:
- Fashion-MNIST: the four IDX files (Debian's `dataset-fashion-mnist` puts them in
  /usr/share/datasets/fashion-mnist);
- CIFAR-10 / CIFAR-100: the python pickles (`cifar-10-batches-py/`, `cifar-100-python/`);
- STL-10: the binary files (`stl10_binary/{train,test}_{X,y}.bin`), labelled splits;
- ImageNet: an ImageFolder (`train/<class>/*.JPEG`, `val/<class>/*.JPEG`), decoded lazily.
Small sets sit in memory as uint8 tensors; ImageNet's images are read when a batch asks.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import pickle
import struct
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from contract.images import IMAGE_SUFFIXES
from workers.data.augment import to_input
from workers.data.crop_boxes import crop_box

RESIZE_RATIO = 256 / 224  # test images are resized to 256 for 224 crops (linear-probes' data.py)


class ImageFiles(Sequence):
    """Images kept as file paths and decoded (RGB uint8 (3, H, W)) when indexed with an int;
    indexing with an index tensor, array or slice gives the subset, still undecoded."""

    def __init__(self, paths: Sequence[str]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, (int, np.integer)):
            return decode_image(str(self.paths[index]), ImageReadMode.RGB)
        if isinstance(index, slice):
            return ImageFiles(self.paths[index])
        return ImageFiles([self.paths[int(i)] for i in index])

    def decode(self) -> list[torch.Tensor]:
        """Every image, decoded on a few threads (the decoders release the GIL)."""
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(lambda p: decode_image(str(p), ImageReadMode.RGB), self.paths))


Images = torch.Tensor | ImageFiles  # uint8 (n, C, H, W), C in {1, 3}; or files


@dataclass(frozen=True)
class ProbeSplit:
    images: Images
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
    """The python version of CIFAR-10 (five train batches, one test batch) or CIFAR-100
    (`train`, `test`, fine labels): pickled dicts of (n, 3072) uint8 rows."""
    if classes == 10:
        folder, files, key = root / "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], b"labels"
        files = files if train else ["test_batch"]
    else:
        folder, files, key = root / "cifar-100-python", ["train" if train else "test"], b"fine_labels"
    data, labels = [], []
    for name in files:
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"no {path}")
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(batch[key])
    return ProbeSplit(torch.from_numpy(np.concatenate(data)), torch.tensor(labels, dtype=torch.int64), classes)


def stl10(root: Path, train: bool) -> ProbeSplit:
    """STL-10's labelled splits: (n, 3, 96, 96) uint8 stored column-major, labels 1..10."""
    folder = root / "stl10_binary" if (root / "stl10_binary").is_dir() else root
    prefix = "train" if train else "test"
    images = np.fromfile(_find(folder, f"{prefix}_X.bin"), dtype=np.uint8).reshape(-1, 3, 96, 96)
    labels = np.fromfile(_find(folder, f"{prefix}_y.bin"), dtype=np.uint8).astype(np.int64) - 1
    return ProbeSplit(torch.from_numpy(images.transpose(0, 1, 3, 2).copy()), torch.from_numpy(labels), 10)


def image_folder(root: Path, train: bool) -> ProbeSplit:
    """ImageNet as an ImageFolder: one folder per class (sorted names are the labels)."""
    folder = root / ("train" if train else "val")
    if not folder.is_dir():
        raise FileNotFoundError(f"no {folder} (ImageNet is read as train/<class>/*, val/<class>/*)")
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += [str(p) for p in files]
        labels += [label] * len(files)
    if not paths:
        raise FileNotFoundError(f"no images in the class folders of {folder}")
    return ProbeSplit(ImageFiles(paths), torch.tensor(labels, dtype=torch.int64), len(classes))


def load_split(name: str, root: str, train: bool) -> ProbeSplit:
    """Raises FileNotFoundError naming the root when the data is not there."""
    path = Path(root)
    if not path.is_dir():
        raise FileNotFoundError(f"probe dataset {name!r}: no data root at {path}")
    if name == "fashion_mnist":
        return fashion_mnist(path, train)
    if name in ("cifar10", "cifar100"):
        return cifar(path, train, 10 if name == "cifar10" else 100)
    if name == "stl10":
        return stl10(path, train)
    if name == "imagenet":
        return image_folder(path, train)
    raise ValueError(f"unknown probe dataset {name!r}")


def subset(split: ProbeSplit, indices: torch.Tensor) -> ProbeSplit:
    return ProbeSplit(split.images[indices], split.labels[indices], split.classes)


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


def subset_of(split: ProbeSplit, size: int | None) -> ProbeSplit:
    """A stratified subset of `size` samples (all of them for None)."""
    return subset(split, stratified_subset(split.labels, size))


def capped(size: int | None, batches: int | None, batch: int) -> int | None:
    """How much of a split a job reads: `size` samples (None: all), at most `batches` batches
    of `batch` when the job is capped (a smoke run: None, not capped)."""
    if batches is None:
        return size
    return batches * batch if size is None else min(size, batches * batch)


def draw_sources(split: ProbeSplit, n: int, seed: int) -> Sequence[torch.Tensor]:
    """N images of a split drawn without replacement from `seed`, in index order, as RGB
    uint8 (3, H, W): a list for in-memory sets, still-undecoded files for ImageNet.

    Raises:
        ValueError: the split holds fewer than N images.
    """
    if n > len(split.labels):
        raise ValueError(f"cannot draw {n} images from a split of {len(split.labels)}")
    picked = torch.from_numpy(np.sort(np.random.default_rng(seed).choice(len(split.labels), n, replace=False)))
    images = split.images[picked]
    if isinstance(images, ImageFiles):
        return images
    return list(images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images)


def chosen_sources(name: str, root: str, chosen: Sequence[str]) -> ImageFiles:
    """The train images a list names (paths below the train split's folder: `<class>/<file>`),
    undecoded, in the list's order; only an ImageFolder (ImageNet) has named files.

    Raises:
        FileNotFoundError: the root is not there, or an image of the list is not in it.
    """
    folder = Path(root) / "train"
    if not folder.is_dir():
        raise FileNotFoundError(f"probe dataset {name!r}: no train split at {folder}")
    missing = [f for f in chosen if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} chosen images are not in {folder}: {', '.join(missing)}")
    return ImageFiles([str(folder / f) for f in chosen])


def content_hash(images: Sequence[torch.Tensor]) -> str:
    """sha256 over the sorted sha256s of the images' bytes (files: the file's bytes), so the
    set, not its order, defines it."""
    if isinstance(images, ImageFiles):
        digests = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in images.paths]
    else:
        digests = [hashlib.sha256(image.contiguous().numpy().tobytes()).hexdigest() for image in images]
    return hashlib.sha256("".join(sorted(digests)).encode()).hexdigest()


def decoded(images: Images) -> torch.Tensor | list[torch.Tensor]:
    """A batch's images as a uint8 tensor or, for files (sizes differ), a list of them."""
    return images.decode() if isinstance(images, ImageFiles) else images


def _rgb(x: torch.Tensor) -> torch.Tensor:
    return x.expand(*x.shape[:-3], 3, *x.shape[-2:]) if x.shape[-3] == 1 else x


def resized(images: torch.Tensor | list[torch.Tensor], size: int) -> torch.Tensor:
    """uint8 (B, C, h, w) or a list of (C, h_i, w_i) -> uint8 (B, 3, size, size): each whole
    image resized to the square input, grey -> RGB."""
    batch = [images] if isinstance(images, torch.Tensor) else [im.unsqueeze(0) for im in images]
    x = torch.cat(
        [
            F.interpolate(b.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            for b in batch
        ]
    )
    return _rgb(x).clamp(0, 255).round().to(torch.uint8)


def eval_inputs(images: torch.Tensor | list[torch.Tensor], size: int) -> torch.Tensor:
    """`resized`, normalised: float (B, 3, size, size)."""
    return to_input(resized(images, size))


def eval_views(images: torch.Tensor | list[torch.Tensor], size: int, crops: str) -> torch.Tensor:
    """The test-time views: normalised float (V, B, 3, size, size). `resize`: V = 1, the whole
    image; `center`: V = 1, Resize(256/224 x size) then the centre crop; `ten`: V = 10, the
    same resize then torchvision's TenCrop (four corners, centre, and their mirrors)."""
    if crops == "resize":
        return eval_inputs(images, size).unsqueeze(0)
    short = round(size * RESIZE_RATIO)
    singles = [images] if isinstance(images, torch.Tensor) else [im.unsqueeze(0) for im in images]
    resized = [TF.resize(b, [short], InterpolationMode.BILINEAR, antialias=True) for b in singles]
    if crops == "center":
        views = [torch.cat([TF.center_crop(b, [size, size]) for b in resized])]
    elif crops == "ten":
        per_image = [TF.ten_crop(b, [size, size]) for b in resized]  # each: 10 x (b, C, s, s)
        views = [torch.cat([crops_of[v] for crops_of in per_image]) for v in range(10)]
    else:
        raise ValueError(f"unknown test crops {crops!r}")
    return to_input(_rgb(torch.stack(views)))


def train_crops(images: torch.Tensor | list[torch.Tensor], size: int, rng: np.random.Generator) -> torch.Tensor:
    """The standard train augmentation (probes, supervised pre-training): RandomResizedCrop
    (area 0.08-1, aspect 3/4-4/3) to `size` + horizontal flip with p = 0.5, per sample;
    uint8 images -> uint8 (B, 3, size, size)."""
    out = []
    for image in images:
        top, left, h, w = crop_box(image.shape[1], image.shape[2], (0.08, 1.0), (3 / 4, 4 / 3), rng)
        crop = TF.resized_crop(image, top, left, h, w, [size, size], InterpolationMode.BILINEAR, antialias=True)
        out.append(TF.horizontal_flip(crop) if rng.random() < 0.5 else crop)
    return _rgb(torch.stack(out))


def train_inputs(images: torch.Tensor | list[torch.Tensor], size: int, rng: np.random.Generator) -> torch.Tensor:
    """train_crops, normalised: float (B, 3, size, size)."""
    return to_input(train_crops(images, size, rng))


class LabelledSamples(Dataset):
    """A labelled split for supervised pre-training: item i is (train_inputs of image i, its
    label); the augmentation draws from a stream seeded from (seed, epoch, i), so every
    epoch sees new crops and a rerun the same ones. Without `augment`: the whole image
    resized to the input size, in every epoch (as the `fast` probes see their train images)."""

    def __init__(self, split: ProbeSplit, size: int, seed: int, epoch: int = 0, augment: bool = True):
        self.split, self.size, self.seed, self.epoch, self.augment = split, size, seed, epoch, augment
        self.classes = split.classes

    def at_epoch(self, epoch: int) -> LabelledSamples:
        return LabelledSamples(self.split, self.size, self.seed, epoch, self.augment)

    def __len__(self) -> int:
        return len(self.split.labels)

    def raw(self, index: int) -> torch.Tensor:
        """uint8 (3, size, size): the sample before normalisation, for pictures."""
        if not self.augment:
            return resized([self.split.images[index]], self.size)[0]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return train_crops([self.split.images[index]], self.size, rng)[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return to_input(self.raw(index)), self.split.labels[index]

    def batch(self, indices: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The training batch on `device`: (normalised float (B, 3, size, size), labels (B,)).
        Made sample by sample on the CPU (real images of different sizes, as upstream's
        DataLoader) and normalised on the device."""
        crops = torch.stack([self.raw(int(i)) for i in indices]).to(device)
        return to_input(crops), self.split.labels[torch.as_tensor(indices)].to(device)
