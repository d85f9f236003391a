"""Finetuning with frozen layers and style transfer, on a real tiny trunk (CPU, seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from contract.datasets import LAYERS
from contract.evaluations import FinetuneConfig, StyleConfig
from contract.images import STYLES_DIR, bundled_photos, sha256_file
from contract.jobs import FinetuneJob, ImageFile, JobCell, StyleCell, StyleJob
from contract.recorder import MemoryRecorder
from tests.workers.test_tasks import NETWORK, rotnet_job
from workers import tasks
from workers.compute import EAGER
from workers.data.mono import load_images
from workers.data.probe_sets import subset_of
from workers.finetune import finetune, finetuned, freeze
from workers.models.alexnet import build_trunk, load_trunk
from workers.style_transfer import StyleLoss, gram, relative_error, square, stylise, transfer

FAST = FinetuneConfig(preset="fast", epochs=1, batch_size=32, train_samples=320, test_samples=200)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, astronaut_file: ImageFile) -> Path:
    """A tiny RotNet trunk: trained, so its BatchNorm statistics are not the defaults."""
    return tasks.pretrain(rotnet_job(astronaut_file), MemoryRecorder(), tmp_path_factory.mktemp("trunk"))


def finetune_job(root: str, frozen: int, **settings) -> FinetuneJob:
    return FinetuneJob(
        key=f"ft{frozen}", label=f"finetune k{frozen}", evaluation="finetune_frozen", pretrain_key="rotnet-0",
        network=NETWORK,
        finetune=FAST.model_copy(update=settings), frozen=frozen, dataset="fashion_mnist", data_root=root,
        seed=0, cells=(JobCell(key=f"ft{frozen}", label=f"k{frozen}"),),
    )


def weights(trunk: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in trunk.state_dict().items()}


def block_of(name: str) -> int | None:
    """`blocks.2.conv.weight` -> 2; the Sobel layer -> None."""
    parts = name.split(".")
    return int(parts[1]) if parts[0] == "blocks" else None


@pytest.mark.parametrize("reinit", [False, True])
@pytest.mark.parametrize("frozen", [0, 2, 5])
def test_finetuning_leaves_the_frozen_layers_bit_identical(
    frozen, reinit, checkpoint, fashion_train, monkeypatch, tmp_path
):
    job = finetune_job("", frozen, reinit=reinit)
    trunk = load_trunk(job.network, checkpoint)
    before = weights(trunk)
    fresh = weights(build_trunk(NETWORK))  # what the global stream gives; reinit must not use it
    started = {}

    def first_freeze(t, k):  # called as training starts (after re-initialisation), then per epoch
        started.setdefault("w", weights(t))
        freeze(t, k)

    monkeypatch.setattr("workers.finetune.freeze", first_freeze)
    recorder = MemoryRecorder()
    finetuned(job, trunk, subset_of(fashion_train, 320), recorder, torch.device("cpu"), tmp_path)
    after = weights(trunk)
    with torch.random.fork_rng():
        torch.manual_seed(job.seed)
        seeded = weights(build_trunk(NETWORK))
    for name, value in before.items():
        block = block_of(name)
        if block is not None and block < frozen:  # conv, BN weights and running statistics
            assert torch.equal(after[name], value), f"{name} changed although conv{block + 1} was frozen"
            assert torch.equal(started["w"][name], value)
            continue
        if block is not None and reinit:  # a fresh seeded init, the same whatever the trunk
            assert torch.equal(started["w"][name], seeded[name]), name
        if name.endswith(("conv.weight", "running_mean")):
            assert not torch.equal(after[name], started["w"][name]), f"{name} did not train"
    assert any(not torch.equal(fresh[n], seeded[n]) for n in fresh)  # the check above can tell
    assert recorder.logged_params[None]["frozen_layers"] == (",".join(LAYERS[:frozen]) or "none")


def test_finetuning_scores_the_test_split(checkpoint, fashion_root, tmp_path):
    recorder = MemoryRecorder()
    scores = finetune(finetune_job(fashion_root, 2), checkpoint, recorder, tmp_path)
    assert 10 < scores["top1"] <= scores["top5"] <= 100  # above chance after one short epoch
    assert recorder.logged_params[None]["test_size"] == 200
    assert recorder.series("top1") == [scores["top1"]]


def test_reinit_makes_the_unfrozen_layers_independent_of_the_trunk(checkpoint, fashion_root, tmp_path, astronaut_file):
    other = tasks.pretrain(rotnet_job(astronaut_file, seed=1), MemoryRecorder(), tmp_path)
    full = [finetune(finetune_job(fashion_root, 0), c, MemoryRecorder(), tmp_path) for c in (checkpoint, other)]
    assert full[0] == full[1]  # k = 0 with reinit: supervised from scratch, whatever the trunk
    kept = [finetune(finetune_job(fashion_root, 2), c, MemoryRecorder(), tmp_path) for c in (checkpoint, other)]
    assert kept[0] != kept[1]  # conv1-2 come from the trunk


def test_finetuning_is_deterministic(checkpoint, fashion_root, tmp_path):
    job = finetune_job(fashion_root, 2)
    runs = [MemoryRecorder() for _ in range(2)]
    assert finetune(job, checkpoint, runs[0], tmp_path) == finetune(job, checkpoint, runs[1], tmp_path)
    assert runs[0].series("train_loss") == runs[1].series("train_loss") != []


def test_resumed_finetuning_ends_with_the_same_weights(checkpoint, fashion_train, tmp_path):
    # 320 samples / 32 = 10 steps an epoch, 2 epochs: the checkpoint at step 15 is mid-epoch 2,
    # after the rate's milestone, with the classifier's dropout stream mid-way.
    job = finetune_job("", 2, epochs=2, lr_milestones=(1,)).model_copy(update={"checkpoint_every": 15})
    train, cpu = subset_of(fashion_train, 320), torch.device("cpu")
    (tmp_path / "a").mkdir()
    torch.manual_seed(job.seed)
    full = finetuned(job, load_trunk(job.network, checkpoint), train, MemoryRecorder(), cpu, tmp_path / "a")
    resume = tmp_path / "resume.pt"
    resume.write_bytes((tmp_path / "a" / "resume.pt").read_bytes())
    (tmp_path / "b").mkdir()
    again = MemoryRecorder()
    torch.manual_seed(job.seed)
    resumed = finetuned(job, load_trunk(job.network, checkpoint), train, again, cpu, tmp_path / "b", resume)
    assert again.series("resumed_from_step") == [15]
    for name, tensor in weights(full).items():
        assert torch.equal(tensor, weights(resumed)[name]), name


def style_file(name: str) -> ImageFile:
    path = STYLES_DIR / f"{name}.jpg"
    return ImageFile(path=str(path), sha256=sha256_file(path))


def photo_file(name: str) -> ImageFile:
    path = bundled_photos()[name]
    return ImageFile(path=str(path), sha256=sha256_file(path))


def test_a_few_style_steps_lower_the_style_loss(checkpoint):
    cfg = StyleConfig(size=64, steps=15, lr=0.05)
    trunk = load_trunk(NETWORK, checkpoint).eval()
    content, style = (square(im, cfg.size) for im in load_images((photo_file("astronaut"), style_file("hubble"))))
    loss = StyleLoss(trunk, content, style, cfg, EAGER)
    image, points = transfer(loss, content, cfg)
    first, last = points[0][1], points[-1][1]
    assert last["style_loss"] < 0.8 * first["style_loss"]
    assert first["content_loss"] == 0.0 < last["content_loss"]  # it starts from the content image
    assert image.shape == (1, 3, 64, 64) and 0 <= image.min() and image.max() <= 1
    assert not torch.equal(image, content)


def test_stylise_records_each_pair_in_its_own_run(checkpoint, tmp_path):
    pairs = [("astronaut", "hubble"), ("astronaut", "ihc")]
    job = StyleJob(
        key="style", label="style", evaluation="style_transfer", pretrain_key="rotnet-0", network=NETWORK,
        style=StyleConfig(size=64, steps=4), seed=0,
        cells=tuple(StyleCell(content=photo_file(c), style=style_file(s), key=f"{c}+{s}", label=s) for c, s in pairs),
    )
    recorder = MemoryRecorder()
    scores = stylise(job, checkpoint, recorder, tmp_path)
    assert set(scores) == {"astronaut+hubble", "astronaut+ihc"}
    for part in scores:
        assert [p.name for p in recorder.artifacts[part]] == ["stylised.png", "content.png", "style.png"]
        assert recorder.series("style_loss", part)[-1] == scores[part]["style_loss"]
        assert recorder.series("style_loss_start", part) == [recorder.series("style_loss", part)[0]]
        # one image a step, loaded once: the steps bound it, never the loading
        (data,), (compute,) = recorder.series("data_s_per_step", part), recorder.series("compute_s_per_step", part)
        assert 0 < data < compute
    assert scores["astronaut+hubble"] != scores["astronaut+ihc"]


def test_gram_is_the_channel_correlation_and_the_losses_ignore_feature_scale():
    features = torch.randn(1, 6, 5, 7)
    expected = torch.einsum("chw,dhw->cd", features[0], features[0]) / 35
    assert torch.allclose(gram(features), expected, atol=1e-5)
    target, x = torch.randn(6, 6), torch.randn(6, 6)
    # A trunk whose features are 10x larger has 100x larger Gram matrices: the same relative loss.
    assert torch.allclose(relative_error(100 * x, 100 * target), relative_error(x, target))
    assert relative_error(target, target) == 0
