"""Shared fixtures of the compute-side tests: real bundled photos and real Fashion-MNIST.

Nothing here is mocked: the photo is the bundled astronaut (checked against its sha256) and
the probe data are Debian's Fashion-MNIST IDX files (`make data` installs them).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from contract.datasets import DEFAULT_DATA_ROOTS
from contract.images import bundled_photos, sha256_file
from contract.jobs import ImageFile
from workers.data.mono import load_images
from workers.data.probe_sets import ProbeSplit, load_split

FASHION_MNIST_ROOT = DEFAULT_DATA_ROOTS["fashion_mnist"]


@pytest.fixture(scope="session")
def fashion_root() -> str:
    if not Path(FASHION_MNIST_ROOT).is_dir():
        pytest.skip(f"Fashion-MNIST not installed at {FASHION_MNIST_ROOT} (run `make data`)")
    return FASHION_MNIST_ROOT


@pytest.fixture(scope="session")
def fashion_train(fashion_root: str) -> ProbeSplit:
    return load_split("fashion_mnist", fashion_root, train=True)


@pytest.fixture(scope="session")
def fashion_test(fashion_root: str) -> ProbeSplit:
    return load_split("fashion_mnist", fashion_root, train=False)


@pytest.fixture(scope="session")
def astronaut_file() -> ImageFile:
    path = bundled_photos()["astronaut"]
    return ImageFile(path=str(path), sha256=sha256_file(path))


@pytest.fixture(scope="session")
def astronaut(astronaut_file: ImageFile) -> torch.Tensor:
    """uint8 (3, 512, 512): the bundled photo, decoded."""
    return load_images((astronaut_file,))[0]


@pytest.fixture(scope="session")
def small_astronaut(astronaut: torch.Tensor) -> torch.Tensor:
    """uint8 (3, 128, 128): the same photo shrunk, so augmentation tests stay fast."""
    return TF.resize(astronaut, [128, 128], InterpolationMode.BICUBIC, antialias=True)
