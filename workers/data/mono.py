"""The mono dataset: d augmented samples generated on the fly from N source images.

The official script writes d = 1,281,167 JPEGs (about 100 GB per setting); here sample i is
computed when asked for, from source image i mod N and streams seeded from (seed, op, i), so a
dataset is fully described by its images, augmentation, length and seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_image

from contract.augmentation import AugmentConfig
from contract.jobs import ImageFile
from workers.data.augment import augment, to_input


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


class MonoDataset(Dataset):
    """Sample i: source image i mod N, augmented -> normalised float (3, size, size). The
    sources are RGB uint8 (3, H, W) tensors, or files decoded when asked (N = all of ImageNet)."""

    def __init__(
        self, images: Sequence[torch.Tensor], augmentation: AugmentConfig, size: int, length: int, seed: int
    ):
        self.images, self.augmentation = images, augmentation
        self.size, self.length, self.seed = size, length, seed

    def __len__(self) -> int:
        return self.length

    def raw(self, index: int) -> torch.Tensor:
        """uint8 (3, size, size): the sample before normalisation, for pictures."""
        source = self.images[index % len(self.images)]
        return augment(source, self.augmentation, self.size, self.seed, index)

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_input(self.raw(index))
