"""workers.data.mono: source images checked by content hash, the on-the-fly mono dataset (stage
1, the generator) and its loader views (stage 2, workers.data.loader)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from contract.augmentation import AugmentConfig, LoaderConfig
from contract.images import bundled_photos, sha256_file
from contract.jobs import ImageFile
from contract.methods import BiGANConfig, DeepClusterConfig, RotNetConfig
from workers.data import mono as mono_module
from workers.data.mono import MonoDataset, load_images
from workers.data.ops import LOADER_STREAM, OP_IDS

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
    item = dataset[3]  # the generated sample: 37 px for a 32 px network (256 / 224 x 32)
    assert item.dtype == torch.float32 and item.shape == (3, 37, 37)
    # Normalised with ImageNet statistics: item = (raw / 255 - mean) / std.
    raw = dataset.raw(3)
    assert raw.dtype == torch.uint8 and raw.shape == (3, 37, 37)
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


# --- stage 2: the loader's views ---------------------------------------------------------------

ROTNET = RotNetConfig().loader
NO_FLIP = LoaderConfig(crop="random_resized", hflip=0.0)


def mono(
    source: torch.Tensor, loader: LoaderConfig | None, preset: str = "full", length: int = 8,
    seed: int = 0,
) -> MonoDataset:
    return MonoDataset([source], AugmentConfig(preset=preset), 64, length, seed, loader)


def test_each_method_has_its_upstream_loader():
    assert RotNetConfig().loader == DeepClusterConfig().loader == ROTNET
    assert (ROTNET.crop, ROTNET.scale, ROTNET.hflip) == ("random_resized", (0.08, 1.0), 0.5)
    assert ROTNET.ratio == pytest.approx((3 / 4, 4 / 3))
    bigan = BiGANConfig().loader
    assert (bigan.crop, bigan.hflip) == ("random", 0.0)
    # The loader's stream is its own: never an op's id (those are part of every sample).
    assert LOADER_STREAM == 7 and LOADER_STREAM not in OP_IDS.values()


def test_loader_view_size_and_normalisation(small_astronaut: torch.Tensor):
    """A view is the network's input: (3, 64, 64) out of a 73 px sample, normalised as to_input."""
    dataset = mono(small_astronaut, ROTNET)
    view = dataset.at_epoch(0)
    assert len(view) == len(dataset) == 8
    raw = view.raw(3)
    assert raw.dtype == torch.uint8 and raw.shape == (3, 64, 64)
    assert dataset.raw(3).shape == (3, 73, 73)  # raw stays the generated sample
    item = view[3]
    assert item.dtype == torch.float32 and item.shape == (3, 64, 64)
    torch.testing.assert_close(item, (raw.float() / 255 - IMAGENET_MEAN) / IMAGENET_STD)


def test_loader_views_are_redrawn_every_epoch_and_repeat_on_resume(small_astronaut: torch.Tensor):
    """The view of sample i depends on (seed, epoch, i) only: another epoch, another crop; a
    new dataset (a resumed run) at the same epoch, the same pixels.
    Mutations tried: the epoch left out of the loader's seed (the same view every epoch), and
    the stream drawn from numpy's global state (different on resume): both fail."""
    first = mono(small_astronaut, ROTNET, seed=3)
    for i in range(4):
        assert not torch.equal(first.at_epoch(0).raw(i), first.at_epoch(1).raw(i)), i
    again = mono(small_astronaut, ROTNET, seed=3)
    np.random.seed(123)  # global state plays no part
    for epoch in (0, 5):
        for i in range(4):
            assert torch.equal(first.at_epoch(epoch)[i], again.at_epoch(epoch)[i]), (epoch, i)
    other_seed = mono(small_astronaut, ROTNET, seed=4)
    assert not torch.equal(first.at_epoch(0).raw(0), other_seed.at_epoch(0).raw(0))


def test_rotnet_loader_flips_about_half_the_views(small_astronaut: torch.Tensor):
    """Each view is the unflipped one (same crop: the crop is drawn before the flip) or its
    mirror, mirrored about half the time over 200 samples (binomial: 100 +- 7).
    Mutations tried: the flip never applied (0 mirrors) and always applied (200): both fail."""
    flipping = mono(small_astronaut, ROTNET, preset="none", length=200).at_epoch(2)
    plain = mono(small_astronaut, NO_FLIP, preset="none", length=200).at_epoch(2)
    mirrored = 0
    for i in range(200):
        a, b = flipping.raw(i), plain.raw(i)
        flipped = torch.equal(a, TF.horizontal_flip(b))
        assert flipped or torch.equal(a, b), i
        mirrored += flipped
    assert 70 <= mirrored <= 130, mirrored


def test_bigan_loader_is_a_random_crop_never_flipped(small_astronaut: torch.Tensor):
    """BiGAN's view is a plain crop of the 73 px sample at some position, never a mirrored one,
    and the position varies. Mutation tried: BiGAN's loader with hflip 0.5: fails (some views
    match only a mirrored crop)."""
    dataset = mono(small_astronaut, BiGANConfig().loader, length=24)
    view = dataset.at_epoch(0)
    positions = set()
    for i in range(24):
        sample, crop = dataset.raw(i), view.raw(i)
        at = [(t, left) for t in range(10) for left in range(10)
              if torch.equal(sample[:, t : t + 64, left : left + 64], crop)]
        assert len(at) == 1, (i, at)  # exactly one position, unmirrored
        positions.add(at[0])
    assert len(positions) > 12


def test_centred_view_is_the_deterministic_centre_crop(small_astronaut: torch.Tensor):
    """DeepCluster's clustering view: the centre 64 px of each 73 px sample (offset 4 on each
    side, 5 on the other), the same in every epoch. Mutation tried: centred() as the loader
    view of epoch 0: fails."""
    dataset = mono(small_astronaut, ROTNET)
    centred = dataset.centred()
    assert len(centred) == 8
    for i in range(4):
        assert torch.equal(centred.raw(i), dataset.raw(i)[:, 4:68, 4:68]), i
        assert torch.equal(centred[i], dataset.centred()[i])
        normalised = (centred.raw(i).float() / 255 - IMAGENET_MEAN) / IMAGENET_STD
        torch.testing.assert_close(centred[i], normalised)
    # Without a loader (a method that has none) every epoch's view is the centre crop.
    plain = mono(small_astronaut, None)
    assert torch.equal(plain.at_epoch(3).raw(1), centred.raw(1))


def test_samples_picture_shows_each_sample_beside_its_loader_view(
    small_astronaut: torch.Tensor, tmp_path: Path
):
    """pictures.samples of a mono dataset: generated sample, then its epoch-0 loader view on a
    white margin, pixel for pixel (PNG is lossless)."""
    from workers import pictures

    dataset = mono(small_astronaut, ROTNET)
    path = pictures.samples(dataset, tmp_path / "mono_samples.png", count=4)
    grid = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)
    assert grid.shape == (3, 2 + 75, 2 + 4 * 75)  # 4 tiles of 73 px, 2 px apart
    for i in range(2):
        left = 2 + 2 * i * 75
        assert torch.equal(grid[:, 2:75, left : left + 73], dataset.raw(i))
        view = grid[:, 2:75, left + 75 : left + 75 + 73]
        assert torch.equal(view[:, :64, :64], dataset.at_epoch(0).raw(i))
        assert (view[:, 64:, :] == 255).all() and (view[:, :, 64:] == 255).all()


def test_a_large_source_set_brings_only_each_batchs_own_sources(small_astronaut: torch.Tensor, monkeypatch):
    """Above ATLAS_SOURCES (N = all of ImageNet) a batch decodes and uploads only the sources
    it uses: the same samples as one atlas of them all, from the right source each. Mutation
    tried: the batch's own sources indexed by i mod N instead of their place among them (the
    wrong source for most samples): the pixels differ by far more than the tolerance."""
    images = [small_astronaut, TF.vertical_flip(small_astronaut), TF.rgb_to_grayscale(small_astronaut, 3),
              TF.invert(small_astronaut), small_astronaut.flip(0)]
    dataset = MonoDataset(images, AugmentConfig(preset="full"), 64, 40, 3)
    indices = np.array([7, 3, 22, 18, 9, 31])  # sources 2, 3, 2, 3, 4, 1: a few, one twice
    whole = dataset.generate(indices, torch.device("cpu"))
    monkeypatch.setattr(mono_module, "ATLAS_SOURCES", 2)
    per_batch = MonoDataset(images, AugmentConfig(preset="full"), 64, 40, 3).generate(indices, torch.device("cpu"))
    assert (per_batch - whole).abs().max() < 2 / 255
