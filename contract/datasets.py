"""The probed layers and the labelled datasets: names, split sizes, classes and where each is
looked for."""

from __future__ import annotations

from typing import Literal, get_args

Layer = Literal["conv1", "conv2", "conv3", "conv4", "conv5"]
LAYERS: tuple[str, ...] = get_args(Layer)

LabelledDataset = Literal["fashion_mnist", "cifar10", "cifar100", "stl10", "imagenet"]
LABELLED_DATASETS: tuple[str, ...] = get_args(LabelledDataset)
# Where each probe dataset is looked for unless the experiment file says otherwise.
DEFAULT_DATA_ROOTS: dict[str, str] = {
    "fashion_mnist": "/usr/share/datasets/fashion-mnist",  # Debian's dataset-fashion-mnist
    "cifar10": "data/cifar10",
    "cifar100": "data/cifar100",
    "stl10": "data/stl10",
    "imagenet": "data/imagenet",
}
# Images in each train split: lets the driver check a draw of N without seeing the data.
TRAIN_SIZES: dict[str, int] = {
    "fashion_mnist": 60_000,
    "cifar10": 50_000,
    "cifar100": 50_000,
    "stl10": 5_000,  # the labelled train split
    "imagenet": 1_281_167,
}
# Images in each test split, and classes: what a job costs is known before the data is seen.
TEST_SIZES: dict[str, int] = {
    "fashion_mnist": 10_000,
    "cifar10": 10_000,
    "cifar100": 10_000,
    "stl10": 8_000,
    "imagenet": 50_000,  # the validation split, ImageNet's test split in every evaluation here
}
CLASSES: dict[str, int] = {
    "fashion_mnist": 10, "cifar10": 10, "cifar100": 100, "stl10": 10, "imagenet": 1000
}
