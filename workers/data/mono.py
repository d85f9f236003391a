"""The mono dataset: d generated samples made on the fly from N source images, and the views a
method's loader takes of them every epoch.

Two stages, as upstream. Stage 1, the generator (workers.data.augment): the official script
writes d = 1,281,167 JPEGs of 256 px (about 100 GB per setting); here sample i is computed when
asked for, from source image i mod N and streams seeded from (seed, op, i), at
generated_size(input size) (256 px for a 224 px network). Stage 2, the method's loader
(workers.data.loader): `at_epoch(e)` crops the network's input out of each sample, anew every
epoch, from streams seeded from (seed, LOADER_STREAM, e, i). A dataset is fully described by its
images, augmentation, loader, input size, length and seed.

Training takes whole batches, `view.batch(indices, device)`, made on the job's device: stage 1
by workers.data.batch_augment, stage 2 by workers.data.batch_loader, from the same draws as the
per-sample path (`raw`, `view.raw`, `view[i]`: the reference, and the pictures), pixels equal
up to interpolation (tests/workers/test_batch_loader.py states how close).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_image

from contract.augmentation import AugmentConfig, LoaderConfig
from contract.jobs import ImageFile
from workers.data.augment import augment, to_input
from workers.data.batch_augment import BatchAugmenter, normalise
from workers.data.batch_loader import centre_views, crop_views, draw_views
from workers.data.loader import centre, load
from workers.data.ops import generated_size, loader_rng


def load_images(files: tuple[ImageFile, ...]) -> list[torch.Tensor]:
    """Decode the source images as uint8 (3, H, W) RGB, checking each file's content hash.

    Raises:
        ValueError: a file's bytes no longer match the hash the sweep was planned with.
    """
    images = []
    for f in files:
        data = Path(f.path).read_bytes()
        if hashlib.sha256(data).hexdigest() != f.sha256:
            raise ValueError(f"{f.path} changed since the sweep was planned (sha256 differs)")
        images.append(decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), ImageReadMode.RGB))
    return images


# Sources an atlas holds for a whole run (about 21 B per source pixel on the device: 1024 photos
# of 500 x 400 px take 4.3 GB); beyond, batches bring their own.
ATLAS_SOURCES = 1024


class MonoDataset(Dataset):
    """Sample i: source image i mod N through the generator -> uint8 (3, G, G) (`raw`), G =
    generated_size(size); as an item, normalised float. The sources are RGB uint8 (3, H, W)
    tensors, or files decoded when asked (N = all of ImageNet). A method trains on a view of
    it: `at_epoch(e)` (its loader's crops of the input size) or `centred()`."""

    def __init__(
        self,
        images: Sequence[torch.Tensor],
        augmentation: AugmentConfig,
        size: int,
        length: int,
        seed: int,
        loader: LoaderConfig | None = None,
    ):
        """`size` is the network's input size; `loader` None: a method without one sees the
        centre crops (`centred`) in every epoch."""
        self.images, self.augmentation, self.loader = images, augmentation, loader
        self.size, self.length, self.seed = size, length, seed
        self.generated = generated_size(size)
        self.augmenters: dict[torch.device, BatchAugmenter] = {}  # the sources' atlas, per device

    def __len__(self) -> int:
        return self.length

    def raw(self, index: int) -> torch.Tensor:
        """uint8 (3, G, G): the generated sample (stage 1), for pictures and the views."""
        source = self.images[index % len(self.images)]
        return augment(source, self.augmentation, self.generated, self.seed, index)

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_input(self.raw(index))

    def generate(self, indices: np.ndarray, device: torch.device) -> torch.Tensor:
        """float (B, 3, G, G) in [0, 1]: samples `indices` made as one batch on `device` (stage 1
        batched: `raw`'s draws, its pixels up to interpolation). Up to ATLAS_SOURCES sources go
        to the device once, on the first call there; from a larger set (N = 1000 or all of
        ImageNet, files decoded when asked) each batch decodes and uploads only its own."""
        device = torch.device(device)
        if len(self.images) > ATLAS_SOURCES:
            needed, local = np.unique(np.asarray(indices) % len(self.images), return_inverse=True)
            sources = (self.images[needed].decode() if hasattr(self.images, "decode")  # files
                       else [self.images[int(j)] for j in needed])
            augmenter = BatchAugmenter(sources, self.augmentation, self.generated, self.seed, device)
            return augmenter(indices, sources=local)
        if device not in self.augmenters:
            self.augmenters[device] = BatchAugmenter(
                self.images, self.augmentation, self.generated, self.seed, device
            )
        return self.augmenters[device](indices)

    def at_epoch(self, epoch: int) -> Dataset:
        """The loader's view of every sample in `epoch`: item i = (3, size, size) normalised."""
        return LoaderView(self, epoch) if self.loader is not None else self.centred()

    def centred(self) -> Dataset:
        """The same view in every epoch: each sample's centre crop of the input size (DeepCluster's
        clustering pass)."""
        return CentredView(self)


class MonoView(Dataset):
    """A view of every mono sample at the input size: `raw(i)` one at a time (the reference, the
    pictures) or `pixels(indices, device)` as one batch; items and training batches are them
    normalised."""

    def __init__(self, mono: MonoDataset):
        self.mono = mono

    def __len__(self) -> int:
        return len(self.mono)

    def raw(self, index: int) -> torch.Tensor:
        """uint8 (3, size, size): the view of sample `index` before normalisation."""
        raise NotImplementedError

    def pixels(self, indices: np.ndarray, device: torch.device) -> torch.Tensor:
        """float (B, 3, size, size) in [0, 1]: the views of samples `indices`, made as one batch on
        `device` from `raw`'s draws."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_input(self.raw(index))

    def batch(self, indices: np.ndarray, device: torch.device) -> torch.Tensor:
        """The training batch: normalised float (B, 3, size, size) on `device`."""
        return normalise(self.pixels(indices, device))


class LoaderView(MonoView):
    """Item i: the loader's view of mono sample i in one epoch, drawn from loader_rng(seed,
    epoch, i) -> normalised float (3, size, size)."""

    def __init__(self, mono: MonoDataset, epoch: int):
        if mono.loader is None:
            raise ValueError("a loader view needs the dataset's loader settings")
        super().__init__(mono)
        self.epoch, self.loader = epoch, mono.loader

    def raw(self, index: int) -> torch.Tensor:
        rng = loader_rng(self.mono.seed, self.epoch, index)
        return load(self.mono.raw(index), self.loader, self.mono.size, rng)

    def pixels(self, indices: np.ndarray, device: torch.device) -> torch.Tensor:
        m = self.mono  # both stages batched
        views = draw_views(self.loader, m.generated, m.size, m.seed, self.epoch, indices)
        return crop_views(m.generate(indices, device), views, m.size)


class CentredView(MonoView):
    """Item i: the centre crop of mono sample i at the input size, normalised; no randomness."""

    def raw(self, index: int) -> torch.Tensor:
        return centre(self.mono.raw(index), self.mono.size)

    def pixels(self, indices: np.ndarray, device: torch.device) -> torch.Tensor:
        return centre_views(self.mono.generate(indices, device), self.mono.size)
