"""What a pretrain job trains on, as the paper's rows ask: N = all as the real images through each
method's own loader (no generator), the loader switched off for one unaugmented image, and the
ten ImageNet images upstream chose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from contract.augmentation import AugmentConfig
from contract.datasets import TRAIN_SIZES
from contract.images import bundled_photos, sha256_file
from contract.jobs import DatasetImages, ImageFile, PretrainJob
from contract.methods import BiGANConfig, DeepClusterConfig, RotNetConfig
from contract.network import NetworkConfig
from contract.recorder import MemoryRecorder
from workers import tasks
from workers.data.loader import load
from workers.data.mono import MonoDataset, load_images
from workers.data.ops import loader_rng
from workers.data.probe_sets import chosen_sources, content_hash, draw_sources
from workers.data.real import RealImages, real_view

NETWORK = NetworkConfig(width=0.25, input_size=64)
WHOLE = TRAIN_SIZES["fashion_mnist"]


def whole_split_job(root: str, method=None) -> PretrainJob:
    return PretrainJob(
        key="all", label="rotnet N60000 fashion_mnist s0", network=NETWORK, seed=0,
        method=method or RotNetConfig(samples=16, epochs=1, batch_size=8),
        drawn=DatasetImages(dataset="fashion_mnist", data_root=root, n=WHOLE),
    )


@pytest.fixture(scope="module")
def coffee() -> torch.Tensor:
    """uint8 (3, 400, 600): a real photo that is not square."""
    path = bundled_photos()["coffee"]
    return load_images((ImageFile(path=str(path), sha256=sha256_file(path)),))[0]


def test_a_real_view_is_the_loaders_crop_of_the_whole_image(coffee: torch.Tensor):
    """RotNet's and DeepCluster's RandomResizedCrop reads the real, non-square image, not a
    generated 73 px square: the view is load() on the image itself."""
    loader = RotNetConfig().loader
    for index in range(4):
        view = real_view(coffee, loader, 64, loader_rng(0, 1, index))
        assert view.shape == (3, 64, 64)
        assert torch.equal(view, load(coffee, loader, 64, loader_rng(0, 1, index)))


def test_bigans_real_view_resizes_the_short_side_then_crops(coffee: torch.Tensor):
    """BiGAN's data.py: minor edge to 72, a random 64 crop; here to generated_size(64) = 73."""
    loader = BiGANConfig().loader
    resized = TF.resize(coffee, [73], InterpolationMode.BILINEAR, antialias=True)
    assert resized.shape == (3, 73, 109)
    view = real_view(coffee, loader, 64, loader_rng(0, 0, 3))
    assert torch.equal(view, load(resized, loader, 64, loader_rng(0, 0, 3)))


def test_the_clustering_view_is_resize_then_centre_crop(coffee: torch.Tensor):
    """DeepCluster main.py: Resize(256) + CenterCrop(224), at 64 px Resize(73) + CenterCrop(64)."""
    resized = TF.resize(coffee, [73], InterpolationMode.BILINEAR, antialias=True)
    assert torch.equal(real_view(coffee, None, 64, None), TF.center_crop(resized, [64, 64]))


def test_a_whole_split_trains_on_its_real_images_without_the_generator(fashion_root: str, fashion_train):
    """N = all: sample i is image i of the split, seen through the method's loader, every epoch
    anew; the clustering pass sees its resized centre. Mutation that fails it: training_set
    building the mono dataset (the generator) for a whole split."""
    recorder = MemoryRecorder()
    dataset = tasks.training_set(whole_split_job(fashion_root), recorder)
    assert isinstance(dataset, RealImages) and len(dataset) == 16
    images = draw_sources(fashion_train, WHOLE, 0)
    assert recorder.logged_params[None]["images_sha256"] == content_hash(images)
    loader = RotNetConfig().loader
    for epoch in (0, 1):
        view = dataset.at_epoch(epoch)
        for i in (0, 7):
            assert torch.equal(view.raw(i), real_view(images[i], loader, 64, loader_rng(0, epoch, i)))
    assert not torch.equal(dataset.at_epoch(0).raw(7), dataset.at_epoch(1).raw(7))
    assert torch.equal(dataset.centred().raw(5), real_view(images[5], None, 64, None))
    batch = dataset.at_epoch(1).batch(np.array([7, 0]), torch.device("cpu"))
    assert batch.shape == (2, 3, 64, 64)
    assert torch.equal(batch[0], dataset.at_epoch(1)[7])


@pytest.mark.parametrize("method", [RotNetConfig(samples=16, epochs=1, batch_size=8),
                                    DeepClusterConfig(samples=16, epochs=1, batch_size=8, k=2, pca_dim=4),
                                    BiGANConfig(samples=16, epochs=1, batch_size=8, z_dim=8, gan_channels=4)],
                         ids=lambda m: m.name)
def test_every_method_pretrains_on_a_whole_split(method, fashion_root: str, tmp_path: Path):
    checkpoint = tasks.pretrain(whole_split_job(fashion_root, method), MemoryRecorder(), tmp_path)
    assert checkpoint.is_file()


def test_without_its_loader_none_is_one_unaugmented_image(astronaut_file: ImageFile):
    """`{preset: none, loader: false}`: every sample, every epoch, the same centre crop; with the
    loader on (the default), RotNet's crop and flip still vary it. Mutation that fails it:
    training_set ignoring the switch."""

    def dataset(loader: bool) -> MonoDataset:
        job = PretrainJob(key="k", label="l", method=RotNetConfig(samples=8, epochs=1, batch_size=4),
                          network=NETWORK, seed=0, images=(astronaut_file,),
                          augmentation=AugmentConfig(preset="none", loader=loader))
        return tasks.training_set(job, MemoryRecorder())  # type: ignore[return-value]

    off = dataset(False)
    views = [off.at_epoch(e).raw(i) for e in (0, 3) for i in (0, 5)]
    assert all(torch.equal(v, views[0]) for v in views) and views[0].shape == (3, 64, 64)
    on = dataset(True)
    assert not torch.equal(on.at_epoch(0).raw(0), on.at_epoch(3).raw(0))


@pytest.fixture
def imagenet_names(tmp_path: Path) -> Path:
    """An ImageFolder root holding the ten files upstream's list names, and one more."""
    from contract.paper_images import CHOSEN

    rng = np.random.default_rng(0)
    for name in [*CHOSEN["asano2020"], "n01440764/n01440764_1.JPEG"]:
        path = tmp_path / "train" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(path)
    return tmp_path


def test_the_chosen_images_are_read_by_name(imagenet_names: Path, tmp_path: Path):
    from contract.paper_images import CHOSEN

    chosen = CHOSEN["asano2020"]
    files = chosen_sources("imagenet", str(imagenet_names), chosen)
    assert files.paths == [str(imagenet_names / "train" / name) for name in chosen]
    job = PretrainJob(key="k", label="l", method=RotNetConfig(samples=8, epochs=1, batch_size=4), network=NETWORK,
                      seed=0, augmentation=AugmentConfig(),
                      drawn=DatasetImages(dataset="imagenet", data_root=str(imagenet_names), n=10, chosen=chosen))
    recorder = MemoryRecorder()
    dataset = tasks.training_set(job, recorder)
    assert isinstance(dataset, MonoDataset) and dataset.images.paths == files.paths
    assert recorder.logged_params[None]["images_sha256"] == content_hash(files)
    (imagenet_names / "train" / chosen[3]).unlink()
    with pytest.raises(FileNotFoundError, match=chosen[3]):
        chosen_sources("imagenet", str(imagenet_names), chosen)


def test_a_job_takes_the_generator_exactly_below_the_whole_split(fashion_root: str):
    """DatasetImages.real_images decides: a whole split takes no augmentation, anything less
    needs one."""
    whole = DatasetImages(dataset="fashion_mnist", data_root=fashion_root, n=WHOLE)
    less = DatasetImages(dataset="fashion_mnist", data_root=fashion_root, n=WHOLE - 1)
    assert whole.real_images and not less.real_images
    method = RotNetConfig(samples=16, epochs=1, batch_size=8)
    with pytest.raises(ValueError, match="without the generator"):
        PretrainJob(key="k", label="l", method=method, network=NETWORK, seed=0, drawn=whole,
                    augmentation=AugmentConfig())
    with pytest.raises(ValueError, match="needs an augmentation"):
        PretrainJob(key="k", label="l", method=method, network=NETWORK, seed=0, drawn=less)
