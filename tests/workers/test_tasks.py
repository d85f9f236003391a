"""workers.tasks: the worker entry points, run end to end on tiny real jobs (CPU, seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from contract.augmentation import AugmentConfig
from contract.evaluations import ProbeConfig
from contract.jobs import DatasetImages, ImageFile, LabelledData, PretrainJob, ProbeCell, ProbeJob
from contract.methods import (
    BiGANConfig,
    DeepClusterConfig,
    RandomConfig,
    RotNetConfig,
    SupervisedConfig,
)
from contract.network import NetworkConfig
from contract.recorder import MemoryRecorder
from workers import tasks
from workers.data.probe_sets import content_hash, draw_sources
from workers.methods.base import DivergedLoss, NonFiniteLoss
from workers.models.alexnet import build_trunk
from workers.probes import feature_shapes

NETWORK = NetworkConfig(width=0.25, input_size=64)  # 64 px: tiny, yet every layer has a pool5
TINY_ROTNET = {"samples": 64, "epochs": 1, "batch_size": 16}  # 64 // 16 = 4 SGD steps


def rotnet_job(image: ImageFile, seed: int = 0, **method: float) -> PretrainJob:
    return PretrainJob(
        key=f"rotnet-{seed}",
        label=f"rotnet astronaut full s{seed}",
        method=RotNetConfig(**{**TINY_ROTNET, **method}),
        network=NETWORK,
        seed=seed,
        images=(image,),
        augmentation=AugmentConfig(preset="full"),
    )


def random_job(seed: int, key: str = "random", images: tuple[ImageFile, ...] = ()) -> PretrainJob:
    return PretrainJob(
        key=key,
        label=f"{key} s{seed}",
        method=RandomConfig(),
        network=NETWORK,
        seed=seed,
        images=images,
    )


def probe_job(root: str, layers: tuple[str, ...] = ("conv1", "conv3")) -> ProbeJob:
    return ProbeJob(
        key="probe",
        label="rotnet astronaut full s0 / fashion_mnist",
        evaluation="linear_probe",
        pretrain_key="rotnet-0",
        network=NETWORK,
        probe=ProbeConfig(preset="fast", epochs=2, train_samples=500, test_samples=500),
        dataset="fashion_mnist",
        data_root=root,
        seed=0,
        cells=tuple(ProbeCell(layer=layer, key=f"cell-{layer}", label=layer) for layer in layers),
    )


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory, astronaut_file: ImageFile):
    """(job, checkpoint path, recorder) of one tiny RotNet pre-training, shared by the tests."""
    job = rotnet_job(astronaut_file)
    recorder = MemoryRecorder()
    path = tasks.pretrain(job, recorder, tmp_path_factory.mktemp("pretrain"))
    return job, path, recorder


def test_pretrain_writes_a_loadable_checkpoint(pretrained):
    job, path, recorder = pretrained
    assert path.name == "checkpoint.pt" and path.is_file()
    state = load(path)
    assert state["step"] == 4
    # The resolved config travels with the checkpoint and validates back to the same job.
    assert PretrainJob.model_validate(state["job"]) == job
    trunk = build_trunk(job.network)
    trunk.load_state_dict(state["trunk"])  # strict: exactly the trunk's keys
    names = [p.name for p in recorder.artifacts[None]]
    assert names == ["mono_samples.png", "conv1_filters.png", "checkpoint.pt"]
    for picture in recorder.artifacts[None][:2]:
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pretrain_trains_the_trunk(pretrained, tmp_path: Path):
    job, path, _ = pretrained
    untrained = tasks.pretrain(random_job(job.seed), MemoryRecorder(), tmp_path)
    trained, initial = load(path)["trunk"], load(untrained)["trunk"]
    assert set(trained) == set(initial)
    # Same seed, same initialisation: what differs is what the 4 SGD steps changed.
    assert not torch.equal(trained["blocks.0.conv.weight"], initial["blocks.0.conv.weight"])
    assert not torch.equal(trained["blocks.4.bn.running_mean"], initial["blocks.4.bn.running_mean"])


def test_pretrain_logs_the_pretext_loss(pretrained):
    _, _, recorder = pretrained
    losses = recorder.series("pretext_loss")
    assert len(losses) == 1  # logged every 20 steps and at the last step (step 4)
    assert [step for step, _ in recorder.logged_metrics[None]] == [4]
    assert 0 < losses[0] < 10 and torch.isfinite(torch.tensor(losses[0]))
    point = recorder.logged_metrics[None][0][1]
    assert {"lr", "samples_per_s", "epoch", "rotation_accuracy", "progress"} <= set(point)
    assert point["data_s_per_step"] > 0 and point["compute_s_per_step"] > 0  # where a step's time goes
    assert point["samples_per_s"] > 0 and point["progress"] == 1.0  # the share of the steps done


def test_a_capped_pretraining_stops_and_logs_at_its_last_step(tmp_path: Path, astronaut_file: ImageFile):
    job = rotnet_job(astronaut_file, epochs=3).model_copy(update={"max_steps": 3})  # 12 steps uncapped
    recorder = MemoryRecorder()
    assert load(tasks.pretrain(job, recorder, tmp_path))["step"] == 3
    assert [step for step, _ in recorder.logged_metrics[None]] == [3]  # 3 < LOG_EVERY: logged at the cap
    assert recorder.logged_metrics[None][0][1]["progress"] == 1.0


def test_a_capped_probe_reads_only_its_steps_batches(pretrained, fashion_root: str):
    _, path, _ = pretrained
    job = probe_job(fashion_root).model_copy(update={"max_steps": 1})  # fast preset: batch 256
    recorder = MemoryRecorder()
    tasks.probe(job, path, recorder)
    assert recorder.logged_params["conv1"]["train_size"] == 256  # of 500
    assert recorder.logged_params["conv1"]["test_size"] == 256  # scored on one batch
    assert [step for step, v in recorder.logged_metrics["conv1"] if "train_loss" in v] == [1]  # one epoch
    assert recorder.series("samples_per_s", "conv1")[-1] > 0


def test_pretrain_is_deterministic(pretrained, tmp_path: Path, astronaut_file: ImageFile):
    job, path, recorder = pretrained
    again = MemoryRecorder()
    second = tasks.pretrain(job, again, tmp_path)
    first_state, second_state = load(path)["trunk"], load(second)["trunk"]
    for name, tensor in first_state.items():
        assert torch.equal(tensor, second_state[name]), name  # bit-identical
    assert again.series("pretext_loss") == recorder.series("pretext_loss")
    (tmp_path / "seed1").mkdir()
    other = load(
        tasks.pretrain(rotnet_job(astronaut_file, seed=1), MemoryRecorder(), tmp_path / "seed1")
    )
    assert not torch.equal(
        other["trunk"]["blocks.0.conv.weight"], first_state["blocks.0.conv.weight"]
    )


def test_random_method_trains_nothing_and_depends_only_on_the_seed(
    tmp_path: Path, astronaut_file: ImageFile
):
    dirs = [tmp_path / name for name in ("a", "b", "c")]
    for d in dirs:
        d.mkdir()
    recorder = MemoryRecorder()
    a = load(tasks.pretrain(random_job(3), recorder, dirs[0]))
    # A different key, label and image set, same seed: the same network.
    b = load(
        tasks.pretrain(
            random_job(3, key="other", images=(astronaut_file,)), MemoryRecorder(), dirs[1]
        )
    )
    c = load(tasks.pretrain(random_job(4), MemoryRecorder(), dirs[2]))
    assert a["step"] == 0 and b["step"] == 0
    assert not recorder.logged_metrics  # no pretext loss: nothing was trained
    assert all(torch.equal(a["trunk"][k], b["trunk"][k]) for k in a["trunk"])
    assert not torch.equal(a["trunk"]["blocks.0.conv.weight"], c["trunk"]["blocks.0.conv.weight"])
    # BatchNorm statistics are the untouched defaults.
    assert torch.equal(a["trunk"]["blocks.0.bn.running_mean"], torch.zeros(24))


def test_pretrain_stops_on_a_non_finite_loss(tmp_path: Path, astronaut_file: ImageFile):
    # lr = 1e30: the first step blows the weights up, the next loss is NaN (step 1 of 4).
    with pytest.raises(NonFiniteLoss) as failure:
        tasks.pretrain(rotnet_job(astronaut_file, lr=1e30), MemoryRecorder(), tmp_path)
    assert failure.value.reason == "nan_loss"
    assert not (tmp_path / "checkpoint.pt").exists()  # no garbage checkpoint is written


def test_pretrain_stops_when_the_loss_rises_above_the_divergence_threshold(
    tmp_path: Path, astronaut_file: ImageFile
):
    # RotNet's cross-entropy over 4 rotations starts near ln 4 = 1.39: finite, but above 0.5.
    job = rotnet_job(astronaut_file).model_copy(update={"divergence_threshold": 0.5})
    with pytest.raises(DivergedLoss, match="at step 0 is above divergence_threshold 0.5") as e:
        tasks.pretrain(job, MemoryRecorder(), tmp_path)
    assert e.value.reason == "diverged"
    assert not (tmp_path / "checkpoint.pt").exists()
    # A threshold above the loss changes nothing: the run trains to the end.
    tasks.pretrain(rotnet_job(astronaut_file).model_copy(update={"divergence_threshold": 100.0}),
                   MemoryRecorder(), tmp_path)
    assert (tmp_path / "checkpoint.pt").exists()


def test_pretrain_with_a_changed_source_image_fails(tmp_path: Path, astronaut_file: ImageFile):
    changed = ImageFile(path=astronaut_file.path, sha256="f" * 64)
    with pytest.raises(ValueError, match="sha256"):
        tasks.pretrain(rotnet_job(changed), MemoryRecorder(), tmp_path)


@pytest.fixture(scope="module")
def probed(pretrained, fashion_root: str):
    _, path, _ = pretrained
    job = probe_job(fashion_root)
    recorder = MemoryRecorder()
    return job, tasks.probe(job, path, recorder), recorder


def test_probe_returns_top1_and_top5_per_layer(probed):
    _, scores, _ = probed
    assert set(scores) == {"conv1", "conv3"}
    for layer, s in scores.items():
        assert set(s) == {"top1", "top5"}
        assert 0 <= s["top1"] <= s["top5"] <= 100, layer
        # Percentages of the 500 test samples: whole counts, so multiples of 0.2.
        assert round(s["top1"] * 5) == pytest.approx(s["top1"] * 5), layer


def test_probe_logs_feature_dims_and_sizes_per_layer(probed):
    _, _, recorder = probed
    # 64 px, width 0.25: conv1 24 ch at 15x15 -> 3x3 grid (10 x 15/55, rounded): 216;
    # conv3 96 ch at 3x3 -> 1x1 grid (5 x 3/13, rounded): 96.
    assert recorder.logged_params["conv1"] == {
        "feature_dim": 216,
        "pooled_grid": "24x3x3",
        "train_size": 500,
        "test_size": 500,
        "trunk_step": 4,
    }
    assert recorder.logged_params["conv3"] == {
        "feature_dim": 96,
        "pooled_grid": "96x1x1",
        "train_size": 500,
        "test_size": 500,
        "trunk_step": 4,
    }
    shapes = feature_shapes(build_trunk(NETWORK), 64, ("conv1", "conv3"))
    assert shapes == {"conv1": (24, 3, 3), "conv3": (96, 1, 1)}
    assert None not in recorder.logged_params  # everything goes to the layer's own run


def test_probe_logs_every_epoch_per_layer(probed):
    _, scores, recorder = probed
    for layer in ("conv1", "conv3"):
        steps = [step for step, values in recorder.logged_metrics[layer] if "train_loss" in values]
        assert steps == [1, 2]
        # Cached features: scored every epoch; the last point is what probe() returned.
        assert len(recorder.series("top1", layer)) == 2
        assert recorder.series("top1", layer)[-1] == scores[layer]["top1"]
        assert recorder.series("top5", layer)[-1] == scores[layer]["top5"]
        assert recorder.series("lr", layer) == pytest.approx([0.01, 0.01])


def test_probe_reports_its_share_done(probed):
    """The figure a driver's live line counts a running job by: through the feature
    extraction (the first half of a cached probe job), then every epoch, up to 1."""
    _, _, recorder = probed
    extraction = recorder.series("progress")  # to every run of the job, as images go through
    assert extraction == sorted(extraction) and 0 < extraction[0] and extraction[-1] == 0.5
    for layer in ("conv1", "conv3"):
        assert recorder.series("progress", layer) == [0.75, 1.0]


def test_probe_is_deterministic(probed, pretrained):
    job, scores, recorder = probed
    _, path, _ = pretrained
    again = MemoryRecorder()
    assert tasks.probe(job, path, again) == scores
    assert again.series("train_loss", "conv1") == recorder.series("train_loss", "conv1")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_probe_runs_on_the_gpu(pretrained, fashion_root: str):
    _, path, _ = pretrained
    scores = tasks.probe(probe_job(fashion_root), path, MemoryRecorder())
    assert set(scores) == {"conv1", "conv3"}


SELF_SUPERVISED = {
    "deepcluster": DeepClusterConfig(samples=32, epochs=2, batch_size=8, k=4, pca_dim=8, kmeans_iterations=5),
    "bigan": BiGANConfig(samples=32, epochs=2, batch_size=8, z_dim=16, gan_channels=8),
}


def ssl_job(name: str, image: ImageFile, checkpoint_every: int = 0) -> PretrainJob:
    method = SELF_SUPERVISED[name]
    return PretrainJob(
        key=name,
        label=f"{name} astronaut full s0",
        method=method,
        network=NETWORK.model_copy(update={"sobel": name == "deepcluster"}),
        seed=0,
        images=(image,),
        augmentation=AugmentConfig(preset="full"),
        checkpoint_every=checkpoint_every,
    )


@pytest.mark.parametrize("name", SELF_SUPERVISED)
def test_pretrain_trains_every_self_supervised_method(name: str, tmp_path: Path, astronaut_file: ImageFile):
    job = ssl_job(name, astronaut_file)
    recorder = MemoryRecorder()
    state = load(tasks.pretrain(job, recorder, tmp_path))
    assert state["step"] == 8  # 32 // 8 = 4 steps an epoch, 2 epochs
    torch.manual_seed(job.seed)
    initial = build_trunk(job.network).state_dict()  # what pretrain() started from
    assert set(initial) == set(state["trunk"])
    assert not torch.equal(state["trunk"]["blocks.0.conv.weight"], initial["blocks.0.conv.weight"])
    points = [point for _, point in recorder.logged_metrics[None]]
    point = next(p for p in reversed(points) if "pretext_loss" in p)
    assert torch.isfinite(torch.tensor(point["pretext_loss"]))
    extra = {"deepcluster": {"cluster_accuracy", "clusters", "cluster_seconds"}, "bigan": {"discriminator_loss"}}[name]
    assert extra <= set(point)
    if name == "bigan":  # its outcome, recorded when it ends (workers/methods/bigan.py D_WINS)
        assert points[-1]["converged"] in (0.0, 1.0) and 0 <= points[-1]["discriminator_accuracy_end"] <= 1


@pytest.mark.parametrize("name", SELF_SUPERVISED)
def test_resumed_pretraining_ends_with_the_same_weights(name: str, tmp_path: Path, astronaut_file: ImageFile):
    # A checkpoint at step 6 is mid-epoch 1: DeepCluster's pseudo-labels of that epoch, BiGAN's
    # discriminator optimiser and the noise stream must all come back with it.
    job = ssl_job(name, astronaut_file, checkpoint_every=6)
    recorder = MemoryRecorder()
    (tmp_path / "a").mkdir()
    full = load(tasks.pretrain(job, recorder, tmp_path / "a"))
    resume = tmp_path / "resume.pt"
    resume.write_bytes((tmp_path / "a" / "resume.pt").read_bytes())
    (tmp_path / "b").mkdir()
    again = MemoryRecorder()
    resumed = load(tasks.pretrain(job, again, tmp_path / "b", resume=resume))
    assert again.series("resumed_from_step") == [6]
    assert resumed["step"] == full["step"] == 8
    for key, tensor in full["trunk"].items():
        assert torch.equal(tensor, resumed["trunk"][key]), key


def test_supervised_pretrain_learns_from_the_labelled_split(tmp_path: Path, fashion_root: str):
    job = PretrainJob(
        key="supervised",
        label="supervised fashion_mnist s0",
        method=SupervisedConfig(train_samples=40, epochs=1, batch_size=8),
        network=NETWORK,
        seed=0,
        labels=LabelledData(dataset="fashion_mnist", data_root=fashion_root),
    )
    recorder = MemoryRecorder()
    state = load(tasks.pretrain(job, recorder, tmp_path))
    assert state["step"] == 5  # 40 images, batch 8
    assert [p.name for p in recorder.artifacts[None]] == ["train_samples.png", "conv1_filters.png", "checkpoint.pt"]
    assert "train_top1" in recorder.logged_metrics[None][-1][1]


def test_supervised_job_needs_its_labelled_dataset():
    with pytest.raises(ValueError, match="labelled dataset"):
        PretrainJob(key="s", label="s", method=SupervisedConfig(), network=NETWORK, seed=0)


def test_pretrain_on_images_drawn_from_a_dataset_records_their_hash(tmp_path: Path, fashion_root: str, fashion_train):
    def job(draw_seed: int) -> PretrainJob:
        return PretrainJob(
            key=f"drawn-{draw_seed}",
            label="rotnet N3 fashion_mnist full s0",
            method=RotNetConfig(samples=16, epochs=1, batch_size=8),
            network=NETWORK,
            seed=0,
            drawn=DatasetImages(dataset="fashion_mnist", data_root=fashion_root, n=3, draw_seed=draw_seed),
            augmentation=AugmentConfig(preset="full"),
        )

    hashes = []
    for draw_seed in (0, 1):
        recorder = MemoryRecorder()
        (tmp_path / str(draw_seed)).mkdir()
        tasks.pretrain(job(draw_seed), recorder, tmp_path / str(draw_seed))
        hashes.append(recorder.logged_params[None]["images_sha256"])
    assert hashes[0] == content_hash(draw_sources(fashion_train, 3, 0))
    assert hashes[0] != hashes[1]
