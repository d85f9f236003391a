"""N = all: a whole train split trained on as it is (contract.jobs.DatasetImages.real_images).

The paper's dataset is "N true images with d - N augmentations": at N = d there are none, and
each method trains on the real images through its own pipeline, as its upstream code reads
ImageNet. Sample i is image i mod N, never through the single-image generator; a method's view
of it is its loader's, taken from the real image at its own size and redrawn every epoch from
loader_rng(seed, epoch, i) (workers.data.loader.load, as the mono dataset's stage 2):
- `random_resized` (RotNet, DeepCluster's training): RandomResizedCrop of the whole image to the
  input size, then the flip (RN dataloader.py l.103-108; DC clustering.py l.142-143);
- `random` (BiGAN): the image's short side resized to generated_size(input) (upstream: 72 for
  64 crops), then a crop of the input size at a uniform position (BG data.py l.71-96);
- no loader (DeepCluster's clustering pass, a method without one): the short side resized to
  generated_size(input), then the centre crop (DC main.py l.122-123: Resize(256) +
  CenterCrop(224)).
Real images differ in size, so a batch is made image by image on the CPU (as upstream's
DataLoader does) and normalised on the device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from contract.augmentation import LoaderConfig
from workers.data.augment import to_input
from workers.data.loader import centre, load
from workers.data.ops import generated_size, loader_rng


def real_view(
    image: torch.Tensor, config: LoaderConfig | None, size: int, rng: np.random.Generator | None
) -> torch.Tensor:
    """One view of a real uint8 (3, H, W) image, any size -> uint8 (3, size, size): the loader's
    (`config`, drawing from `rng`), or with no loader the resized centre crop."""
    if config is not None and config.crop == "random_resized":
        return load(image, config, size, rng)  # type: ignore[arg-type]
    resized = F.resize(image, [generated_size(size)], InterpolationMode.BILINEAR, antialias=True)  # short side
    if config is None:
        return centre(resized, size)
    return load(resized, config, size, rng)  # type: ignore[arg-type]


class RealImages(Dataset):
    """d samples of N real uint8 (3, H, W) images (a list, or files decoded when asked): sample i
    is image i mod N. `at_epoch(e)`: the loader's views of epoch e; `centred()`: the resized
    centre crops (and every epoch's view when `loader` is None)."""

    def __init__(
        self, images: Sequence[torch.Tensor], size: int, length: int, seed: int, loader: LoaderConfig | None
    ):
        self.images, self.size, self.length, self.seed, self.loader = images, size, length, seed, loader

    def __len__(self) -> int:
        return self.length

    def image(self, index: int) -> torch.Tensor:
        return self.images[index % len(self.images)]

    def at_epoch(self, epoch: int) -> RealView:
        return RealView(self, epoch, self.loader) if self.loader is not None else self.centred()

    def centred(self) -> RealView:
        return RealView(self, None, None)

    def raw(self, index: int) -> torch.Tensor:
        """uint8 (3, size, size): sample `index` as the first epoch shows it (for pictures)."""
        return self.at_epoch(0).raw(index)

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_input(self.raw(index))


class RealView(Dataset):
    """Item i: a view of real sample i, normalised float (3, size, size): the loader's in `epoch`
    (from loader_rng(seed, epoch, i)), or with no loader the resized centre crop."""

    def __init__(self, real: RealImages, epoch: int | None, loader: LoaderConfig | None):
        self.real, self.epoch, self.loader = real, epoch, loader

    def __len__(self) -> int:
        return len(self.real)

    def raw(self, index: int) -> torch.Tensor:
        """uint8 (3, size, size): the view of sample `index` before normalisation."""
        rng = None if self.loader is None else loader_rng(self.real.seed, self.epoch, index)  # type: ignore[arg-type]
        return real_view(self.real.image(index), self.loader, self.real.size, rng)

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_input(self.raw(index))

    def batch(self, indices: np.ndarray, device: torch.device) -> torch.Tensor:
        """The training batch: normalised float (B, 3, size, size) on `device`."""
        return to_input(torch.stack([self.raw(int(i)) for i in indices]).to(device))
