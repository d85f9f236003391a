"""Fixture folders in ImageNet's and CIFAR's on-disk layouts, made from the bundled photos:
what `monosweep smoke --data-root` reads where the real datasets are not (the smoke run times
the shapes, which the image content does not change; the class count and image size are
ImageNet's and CIFAR's).

    python -m tests.fake_datasets /tmp/fake     # imagenet/, cifar10/, cifar100/ under /tmp/fake
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from contract.images import bundled_photos

IMAGENET_SIZE = (500, 375)  # (width, height): ImageNet's most common train image size


def _photos() -> list[Image.Image]:
    return [Image.open(path).convert("RGB") for _, path in sorted(bundled_photos().items())]


def imagenet(root: Path, classes: int = 1000, train_per_class: int = 1, val_per_class: int = 1,
             size: tuple[int, int] = IMAGENET_SIZE) -> Path:
    """An ImageFolder: train/<class>/*.JPEG and val/<class>/*.JPEG, each image a bundled photo
    at `size`, shifted a little per image (distinct files, a real JPEG to decode)."""
    photos = [p.resize(size) for p in _photos()]
    for split, per_class in (("train", train_per_class), ("val", val_per_class)):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                image = np.roll(np.asarray(photos[(c + i) % len(photos)]), 7 * c + i, axis=1)
                Image.fromarray(image).save(folder / f"n{c:08d}_{i}.JPEG", quality=90)
    return root


def cifar(root: Path, classes: int, train: int = 1000, test: int = 500) -> Path:
    """The python pickles of CIFAR-10 (five train batches and a test batch) or CIFAR-100 (train,
    test): (n, 3072) uint8 rows of 32 px photos, labels cycling through the classes."""
    small = np.stack([np.asarray(p.resize((32, 32))) for p in _photos()]).transpose(0, 3, 1, 2)
    if classes == 10:
        folder, key = root / "cifar-10-batches-py", b"labels"
        files = {f"data_batch_{i}": train // 5 for i in range(1, 6)} | {"test_batch": test}
    else:
        folder, key = root / "cifar-100-python", b"fine_labels"
        files = {"train": train, "test": test}
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in files.items():
        rows = np.roll(small[np.arange(n) % len(small)], 1, axis=3).reshape(n, -1)
        with (folder / name).open("wb") as f:
            pickle.dump({b"data": rows, key: [j % classes for j in range(n)]}, f)
    return root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", type=Path)
    p.add_argument("--imagenet-classes", type=int, default=1000)
    args = p.parse_args()
    imagenet(args.root / "imagenet", args.imagenet_classes)
    cifar(args.root / "cifar10", 10)
    cifar(args.root / "cifar100", 100)
    print(" ".join(f"--data-root {d}={args.root / d}" for d in ("imagenet", "cifar10", "cifar100")))


if __name__ == "__main__":
    main()
