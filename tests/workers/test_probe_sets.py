"""workers.data.probe_sets: each loader on a small real fixture written in its on-disk format
(re-encoded bundled photos), draws of source images, and jobs that run on them."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from contract.augmentation import AugmentConfig
from contract.evaluations import ProbeConfig
from contract.images import bundled_photos
from contract.jobs import DatasetImages, PretrainJob, ProbeCell, ProbeJob
from contract.methods import RotNetConfig
from contract.network import NetworkConfig
from contract.recorder import MemoryRecorder
from workers import tasks
from workers.data.probe_sets import (
    ImageFiles,
    content_hash,
    draw_sources,
    eval_views,
    load_split,
    stratified_subset,
    subset,
)

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
NETWORK = NetworkConfig(width=0.25, input_size=64)


def photo(name: str, size: tuple[int, int]) -> np.ndarray:
    """A bundled photo resized to (width, height): uint8 (H, W, 3)."""
    return np.asarray(Image.open(bundled_photos()[name]).convert("RGB").resize(size))


def stack(n: int, side: int) -> np.ndarray:
    """n distinct images, uint8 (n, 3, side, side): the photos, each also mirrored and darkened."""
    base = [photo(name, (side, side)) for name in PHOTOS]
    out = [(base[i % 4][:, ::-1] if (i // 4) % 2 else base[i % 4]) // (1 + i // 8) for i in range(n)]
    return np.stack(out).transpose(0, 3, 1, 2).copy()


@pytest.fixture(scope="module")
def stl10_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """STL-10's binary layout: column-major (n, 3, 96, 96) uint8 images, labels 1..10."""
    root = tmp_path_factory.mktemp("stl10")
    (root / "stl10_binary").mkdir()
    images, labels = stack(10, 96), np.arange(1, 11, dtype=np.uint8)
    for split in ("train", "test"):
        images.transpose(0, 1, 3, 2).tofile(root / "stl10_binary" / f"{split}_X.bin")
        labels.tofile(root / "stl10_binary" / f"{split}_y.bin")
    return root, images, labels


def test_stl10_reads_the_binary_format(stl10_root):
    root, images, labels = stl10_root
    split = load_split("stl10", str(root), train=True)
    assert split.images.shape == (10, 3, 96, 96) and split.images.dtype == torch.uint8
    assert torch.equal(split.images, torch.from_numpy(images))  # upright, not transposed
    assert split.labels.tolist() == list(range(10)) and split.classes == 10  # 1..10 -> 0..9
    assert load_split("stl10", str(root), train=False).images.shape == (10, 3, 96, 96)


@pytest.fixture(scope="module")
def cifar_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """The python pickles of CIFAR-10 (5 train batches + test) and CIFAR-100 (train, test)."""
    roots = {}
    for classes in (10, 100):
        root = tmp_path_factory.mktemp(f"cifar{classes}")
        folder = root / ("cifar-10-batches-py" if classes == 10 else "cifar-100-python")
        folder.mkdir()
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"] if classes == 10 else ["train", "test"]
        key = b"labels" if classes == 10 else b"fine_labels"
        for i, name in enumerate(names):
            images = stack(4, 32) // (i + 1)
            batch = {b"data": images.reshape(4, -1), key: [(7 * i + j) % classes for j in range(4)]}
            with (folder / name).open("wb") as f:
                pickle.dump(batch, f)
        roots[classes] = root
    return roots


@pytest.mark.parametrize("classes", [10, 100])
def test_cifar_reads_the_python_pickles(cifar_roots, classes: int):
    name = f"cifar{classes}"
    train = load_split(name, str(cifar_roots[classes]), train=True)
    test = load_split(name, str(cifar_roots[classes]), train=False)
    batches = 5 if classes == 10 else 1
    assert train.images.shape == (4 * batches, 3, 32, 32) and test.images.shape == (4, 3, 32, 32)
    assert train.classes == classes
    assert torch.equal(train.images[:4], torch.from_numpy(stack(4, 32)))  # rows are CHW
    assert train.labels[:4].tolist() == [0, 1, 2, 3]
    assert test.labels.tolist() == [(7 * batches + j) % classes for j in range(4)]


@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ImageFolder: train/ and val/ with 3 classes, JPEG and PNG, colour and grey, sizes differ."""
    root = tmp_path_factory.mktemp("imagenet")
    for split, per_class in (("train", 4), ("val", 2)):
        for c, name in enumerate(("n01", "n02", "n03")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                image = Image.fromarray(photo(PHOTOS[(c + i) % 4], (80 + 8 * i, 64 + 4 * c)))
                if i == 1:
                    image.convert("L").save(folder / f"{name}_{i}.png")
                else:
                    image.save(folder / f"{name}_{i}.JPEG", quality=90)
            (folder / "notes.txt").write_text("not an image")
    return root


def test_imagenet_reads_an_image_folder_lazily(imagenet_root: Path):
    split = load_split("imagenet", str(imagenet_root), train=True)
    assert isinstance(split.images, ImageFiles) and len(split.images) == 12
    assert split.classes == 3 and split.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    first = split.images[0]
    assert first.dtype == torch.uint8 and first.shape == (3, 64, 80)
    grey = split.images[1]  # a grey PNG, decoded as RGB
    assert grey.shape == (3, 64, 88) and torch.equal(grey[0], grey[2])
    part = split.images[torch.tensor([0, 5])]
    assert isinstance(part, ImageFiles) and [im.shape for im in part.decode()] == [(3, 64, 80), (3, 68, 88)]
    views = eval_views(part.decode(), 64, "ten")  # sizes differ: resized one by one
    assert views.shape == (10, 2, 3, 64, 64)
    sub = subset(split, stratified_subset(split.labels, 6))
    assert isinstance(sub.images, ImageFiles) and sorted(sub.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    assert len(load_split("imagenet", str(imagenet_root), train=False).labels) == 6


def test_loaders_name_what_is_missing(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no data root"):
        load_split("cifar10", str(tmp_path / "nope"), train=True)
    with pytest.raises(FileNotFoundError, match="train/<class>"):
        load_split("imagenet", str(tmp_path), train=True)
    with pytest.raises(FileNotFoundError, match="train_X.bin"):
        load_split("stl10", str(tmp_path), train=True)
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        load_split("cifar10", str(tmp_path), train=True)
    with pytest.raises(ValueError, match="unknown probe dataset"):
        load_split("mnist", str(tmp_path), train=True)


def test_draws_from_a_split_are_seeded_and_hashed(stl10_root, imagenet_root: Path):
    split = load_split("stl10", str(stl10_root[0]), train=True)
    a, b, c = draw_sources(split, 3, 0), draw_sources(split, 3, 0), draw_sources(split, 3, 1)
    assert len(a) == 3 and all(x.shape == (3, 96, 96) for x in a)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert content_hash(a) == content_hash(b) != content_hash(c)
    assert content_hash(list(reversed(a))) == content_hash(a)  # the set, not its order
    with pytest.raises(ValueError, match="cannot draw 11"):
        draw_sources(split, 11, 0)
    # ImageNet: the drawn files stay files; their hash is over the files' bytes.
    files = draw_sources(load_split("imagenet", str(imagenet_root), train=True), 2, 0)
    assert isinstance(files, ImageFiles)
    digests = sorted(hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in files.paths)
    assert content_hash(files) == hashlib.sha256("".join(digests).encode()).hexdigest()


def test_grey_draws_become_rgb(fashion_train):
    drawn = draw_sources(fashion_train, 2, 0)
    assert all(x.shape == (3, 28, 28) and torch.equal(x[0], x[2]) for x in drawn)


def test_jobs_run_on_an_image_folder(imagenet_root: Path, tmp_path: Path):
    # Pre-train on 3 images drawn from the folder's train split, then probe on the folder.
    job = PretrainJob(
        key="in",
        label="rotnet N3 imagenet full s0",
        method=RotNetConfig(samples=16, epochs=1, batch_size=8),
        network=NETWORK,
        seed=0,
        drawn=DatasetImages(dataset="imagenet", data_root=str(imagenet_root), n=3),
        augmentation=AugmentConfig(preset="full"),
    )
    recorder = MemoryRecorder()
    checkpoint = tasks.pretrain(job, recorder, tmp_path)
    assert len(recorder.logged_params[None]["images_sha256"]) == 64
    probe = ProbeJob(
        key="p",
        label="probe",
        evaluation="linear_probe",
        pretrain_key="in",
        network=NETWORK,
        probe=ProbeConfig(epochs=1, batch_size=6),  # asano2020: random crops, ten test crops
        dataset="imagenet",
        data_root=str(imagenet_root),
        seed=0,
        cells=(ProbeCell(layer="conv1", key="c1", label="conv1"), ProbeCell(layer="conv5", key="c5", label="conv5")),
    )
    scores = tasks.probe(probe, checkpoint, MemoryRecorder())
    assert set(scores) == {"conv1", "conv5"}
    assert all(0 <= s["top1"] <= s["top5"] <= 100 for s in scores.values())
    # 6 val images: scores are multiples of 1/6.
    assert all(round(s["top1"] * 6 / 100) == pytest.approx(s["top1"] * 6 / 100) for s in scores.values())
