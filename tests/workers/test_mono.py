"""workers.data.mono: source images checked by content hash, and the on-the-fly mono dataset."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from contract.augmentation import AugmentConfig
from contract.images import bundled_photos, sha256_file
from contract.jobs import ImageFile
from workers.data.mono import MonoDataset, load_images

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def test_bundled_photos_decode_as_rgb_uint8():
    photos = bundled_photos()
    assert {"astronaut", "chelsea", "coffee", "rocket"} <= set(photos)
    files = tuple(ImageFile(path=str(p), sha256=sha256_file(p)) for p in photos.values())
    images = load_images(files)
    assert len(images) == len(files)
    for image in images:
        assert image.dtype == torch.uint8 and image.ndim == 3 and image.shape[0] == 3
        assert image.shape[1] >= 256 and image.shape[2] >= 256


def test_load_images_checks_the_content_hash(tmp_path: Path):
    copy = tmp_path / "astronaut.jpg"
    shutil.copyfile(bundled_photos()["astronaut"], copy)
    good = hashlib.sha256(copy.read_bytes()).hexdigest()
    assert load_images((ImageFile(path=str(copy), sha256=good),))[0].shape == (3, 512, 512)
    with pytest.raises(ValueError, match="sha256"):
        load_images((ImageFile(path=str(copy), sha256="0" * 64),))
    # The same path with changed bytes no longer matches the planned hash.
    copy.write_bytes(copy.read_bytes() + b"\0")
    with pytest.raises(ValueError, match=str(copy)):
        load_images((ImageFile(path=str(copy), sha256=good),))


def test_greyscale_source_is_decoded_as_three_channels(tmp_path: Path):
    path = tmp_path / "grey.png"
    grey = np.arange(64 * 80, dtype=np.uint32).reshape(64, 80) % 256
    Image.fromarray(grey.astype(np.uint8)).save(path)  # 2-D uint8 -> mode L, one channel
    assert Image.open(path).mode == "L"
    (image,) = load_images((ImageFile(path=str(path), sha256=sha256_file(path)),))
    assert image.shape == (3, 64, 80) and image.dtype == torch.uint8
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
    assert torch.equal(image[0], torch.from_numpy(grey.astype(np.uint8)))


def test_mono_dataset_length_and_items(small_astronaut: torch.Tensor):
    dataset = MonoDataset(
        [small_astronaut], AugmentConfig(preset="full"), size=32, length=10, seed=0
    )
    assert len(dataset) == 10
    item = dataset[3]
    assert item.dtype == torch.float32 and item.shape == (3, 32, 32)
    # Normalised with ImageNet statistics: item = (raw / 255 - mean) / std.
    raw = dataset.raw(3)
    assert raw.dtype == torch.uint8 and raw.shape == (3, 32, 32)
    torch.testing.assert_close(item, (raw.float() / 255 - IMAGENET_MEAN) / IMAGENET_STD)
    lowest = (0 - IMAGENET_MEAN) / IMAGENET_STD
    highest = (1 - IMAGENET_MEAN) / IMAGENET_STD
    assert ((item >= lowest - 1e-5) & (item <= highest + 1e-5)).all()
    assert torch.equal(dataset[3], item)  # computed again, the same sample


def test_mono_dataset_cycles_through_its_sources(small_astronaut: torch.Tensor):
    # Sample i comes from source i mod N: with `none`, a sample is its source, resized.
    other = torch.flip(small_astronaut, dims=(1,))  # a second, different source
    dataset = MonoDataset(
        [small_astronaut, other], AugmentConfig(preset="none"), size=32, length=6, seed=0
    )
    assert torch.equal(dataset.raw(0), dataset.raw(2)) and torch.equal(
        dataset.raw(0), dataset.raw(4)
    )
    assert torch.equal(dataset.raw(1), dataset.raw(5))
    assert not torch.equal(dataset.raw(0), dataset.raw(1))


def test_mono_dataset_is_reproducible_from_its_seed(small_astronaut: torch.Tensor):
    full = AugmentConfig(preset="full")
    a = MonoDataset([small_astronaut], full, size=32, length=4, seed=1)
    b = MonoDataset([small_astronaut], full, size=32, length=4, seed=1)
    c = MonoDataset([small_astronaut], full, size=32, length=4, seed=2)
    assert all(torch.equal(a.raw(i), b.raw(i)) for i in range(4))
    assert not any(torch.equal(a.raw(i), c.raw(i)) for i in range(4))
