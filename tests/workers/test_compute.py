"""workers.compute: bf16 autocast, channels_last and torch.compile, on the CPU.

A bf16 step trains and agrees with fp32 on a fixed batch within stated tolerances; channels_last
changes no output beyond float rounding; a compiled trunk gives eager's numbers and checkpoints;
and every loop that runs a trunk computes as its job says (a spy on the trunk and the probe
heads records, per loop, the dtype and memory format of what they return)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from contract.augmentation import AugmentConfig
from contract.compute import ComputeConfig
from contract.evaluations import FinetuneConfig, ProbeConfig, StyleConfig
from contract.images import STYLES_DIR, sha256_file
from contract.jobs import FinetuneJob, ImageFile, JobCell, PretrainJob, ProbeCell, ProbeJob, StyleCell, StyleJob
from contract.methods import BiGANConfig, DeepClusterConfig, RandomConfig, RotNetConfig
from contract.network import NetworkConfig
from contract.recorder import MemoryRecorder
from contract.schedules import Schedule
from workers import finetune, style_transfer, tasks
from workers.compute import Compute
from workers.data.mono import MonoDataset
from workers.methods.rotnet import RotNet
from workers.models.alexnet import AlexNet
from workers.probes import LinearProbes, view_features
from workers.training import Loop, train_step

CPU = torch.device("cpu")
FP32 = ComputeConfig()
BF16 = ComputeConfig(precision="bf16")  # with channels_last, its default
LOOP = Loop(seed=0, epochs=1, batch_size=8, lr=0.05, schedule=Schedule(kind="constant"))


def test_bf16_brings_channels_last_unless_told_otherwise():
    assert BF16.channels_last and BF16.label == "bf16 + channels_last"
    assert not ComputeConfig(precision="bf16", channels_last=False).channels_last
    assert ComputeConfig(precision="bf16", compile=True).label == "bf16 + channels_last + compile"
    assert FP32.label == "fp32"


@pytest.fixture(scope="module")
def batch(small_astronaut: torch.Tensor) -> torch.Tensor:
    """8 mono samples of the astronaut at 64 px, through RotNet's loader: (8, 3, 64, 64)."""
    dataset = MonoDataset([small_astronaut], AugmentConfig(preset="full"), 64, 8, 0, RotNetConfig().loader)
    return torch.stack([dataset.at_epoch(0)[i] for i in range(8)])


def rotnet(config: ComputeConfig, seed: int = 0) -> tuple[RotNet, Compute]:
    """RotNet (width 0.25, 64 px), initialised from `seed`, prepared for `config`."""
    torch.manual_seed(seed)
    method = RotNet(RotNetConfig(lr=0.05, nesterov=False, weight_decay=0.0), AlexNet(width=0.25), input_size=64)
    compute = Compute(config, CPU)
    compute.prepare(method, method.trunk)
    return method.train(), compute


def forward_and_gradient(config: ComputeConfig, batch: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
    """(loss, pool5 features, the trunk's gradient) of one RotNet step from the same init."""
    method, compute = rotnet(config)
    with compute.autocast():
        loss, _ = method.training_step(batch)
        features = method.trunk(batch).float()
    loss.backward()
    gradient = torch.cat([p.grad.flatten() for p in method.trunk.parameters()])
    return loss.item(), features.detach(), gradient


def relative(x: torch.Tensor, reference: torch.Tensor) -> float:
    return float((x - reference).norm() / reference.norm())


def test_a_bf16_step_trains(batch: torch.Tensor):
    """training.train_step (fit's step) in bf16 + channels_last: the pretext loss falls from
    chance (ln 4) over 20 steps on a fixed batch, as it does in fp32 (test_rotnet)."""
    method, compute = rotnet(BF16)
    optimizers = method.configure_optimizers()
    losses = [train_step(method, optimizers, batch, compute, step, LOOP)[0] for step in range(20)]
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert first > 1.0 and last < 0.7 * first, losses


def test_bf16_agrees_with_fp32_on_a_fixed_batch(batch: torch.Tensor):
    """Same init, same batch. Tolerances (measured here: 0.11 %, 0.68 %, 0.94): the loss within
    0.5 % and pool5's features within 2 % (relative L2) of fp32's, bf16's 8-bit mantissa
    (~0.4 % a rounding) over five convs; the trunk's gradient points the same way (cosine above
    0.9): bf16 rounds the activations backward reads, and at a loss at chance the gradient is a
    small difference of large terms through train-mode BatchNorm. Mutation tried: Compute.autocast
    ignoring the precision (always fp32) fails the last assertion."""
    loss32, features32, gradient32 = forward_and_gradient(FP32, batch)
    loss16, features16, gradient16 = forward_and_gradient(BF16, batch)
    assert abs(loss16 - loss32) / loss32 < 0.005
    assert relative(features16, features32) < 0.02
    assert F.cosine_similarity(gradient16, gradient32, dim=0) > 0.9
    assert loss16 != loss32  # it did compute in bf16


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_channels_last_gives_the_same_outputs(precision: str, batch: torch.Tensor):
    """NHWC against NCHW at the same precision: the same loss and features up to the order of
    float sums (measured: 2e-7 and 8e-7 relative in fp32; in bf16 3e-5, and features bit-equal),
    and in fp32 the same gradient (3e-6). A bf16 gradient is as sensitive to the order of its
    sums as to bf16 itself (see above: 13 % apart here, cosine above 0.9)."""
    plain = forward_and_gradient(ComputeConfig(precision=precision, channels_last=False), batch)
    nhwc = forward_and_gradient(ComputeConfig(precision=precision, channels_last=True), batch)
    tolerance = 1e-5 if precision == "fp32" else 1e-3
    assert abs(nhwc[0] - plain[0]) / plain[0] < tolerance
    assert relative(nhwc[1], plain[1]) < tolerance
    if precision == "fp32":
        assert relative(nhwc[2], plain[2]) < 1e-4
    else:
        assert F.cosine_similarity(nhwc[2], plain[2], dim=0) > 0.9


@pytest.mark.slow  # torch.compile builds C++ kernels: ~40 s on two cores
def test_a_compiled_trunk_gives_eager_numbers_and_checkpoints(batch: torch.Tensor):
    """compile: the probes' features and fit's step equal eager's (fp32, to float rounding),
    and the trunk's state dict keeps its keys (checkpoints do not depend on the setting)."""
    compiled = ComputeConfig(compile=True)
    eager, eager_compute = rotnet(FP32)
    method, compute = rotnet(compiled)
    assert list(method.trunk.state_dict()) == list(eager.trunk.state_dict())
    views = batch[None]
    with torch.no_grad():
        method.eval(), eager.eval()
        ours = view_features(method.trunk, views, ("conv1", "conv5"), compute)
        theirs = view_features(eager.trunk, views, ("conv1", "conv5"), eager_compute)
        for layer in ours:
            torch.testing.assert_close(ours[layer], theirs[layer], rtol=1e-4, atol=1e-5)
    method.train(), eager.train()
    ours_loss = train_step(method, method.configure_optimizers(), batch, compute, 0, LOOP)[0]
    eager_loss = train_step(eager, eager.configure_optimizers(), batch, eager_compute, 0, LOOP)[0]
    assert ours_loss == pytest.approx(eager_loss, rel=1e-5)


# Every loop that runs a trunk, and where it does: the function (module.name) the spy finds
# first going out from a trunk's or the heads' forward. The dry runs that only read shapes run
# before any loop and compute nothing that is kept.
LOOPS = {
    "workers.methods.rotnet.training_step", "workers.methods.bigan.training_step",
    "workers.methods.deepcluster.training_step", "workers.methods.deepcluster.features",
    "workers.methods.supervised.training_step", "workers.finetune.evaluate",
    "workers.probes.extract", "workers.probes.train_epoch", "workers.probes.step", "workers.probes.evaluate",
    "workers.style_transfer.__init__", "workers.style_transfer.__call__",
}
SHAPE_RUNS = {"workers.models.alexnet.pool5_shape", "workers.probes.feature_shapes"}


@dataclass(frozen=True)
class Seen:
    """One forward: where it ran, the dtypes it returned, and whether every map it returned
    with more than one position is channels_last."""

    where: str
    dtypes: frozenset[torch.dtype]
    channels_last: bool


def where() -> str:
    frame = sys._getframe(2)
    while frame is not None:
        name = f"{frame.f_globals.get('__name__')}.{frame.f_code.co_name}"
        if name in LOOPS | SHAPE_RUNS:
            return name
        frame = frame.f_back
    return "outside every known loop"


@pytest.fixture
def seen(monkeypatch) -> dict[str, list[Seen]]:
    """What the trunk (forward and taps) and the probe heads return, call by call."""
    records: dict[str, list[Seen]] = {"trunk": [], "heads": []}

    def spy(part: str, function):
        def spied(self, *args, **kwargs):
            out = function(self, *args, **kwargs)
            tensors = list(out.values()) if isinstance(out, dict) else [out]
            maps = [t for t in tensors if t.ndim == 4 and t.shape[2] * t.shape[3] > 1]
            nhwc = all(t.is_contiguous(memory_format=torch.channels_last) for t in maps)
            records[part].append(Seen(where(), frozenset(t.dtype for t in tensors), nhwc))
            return out

        return spied

    monkeypatch.setattr(AlexNet, "forward", spy("trunk", AlexNet.forward))
    monkeypatch.setattr(AlexNet, "taps", spy("trunk", AlexNet.taps))
    monkeypatch.setattr(LinearProbes, "forward", spy("heads", LinearProbes.forward))
    return records


# 96 px: pool5 is 2 x 2, so the trunk's forward output shows its memory format too.
NETWORK = NetworkConfig(width=0.25, input_size=96)


@pytest.fixture(scope="module")
def trunk_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    job = PretrainJob(key="random", label="random", method=RandomConfig(), network=NETWORK, seed=0)
    return tasks.pretrain(job, MemoryRecorder(), tmp_path_factory.mktemp("trunk"))


def pretraining(method, sobel: bool = False):
    def run(compute: ComputeConfig, astronaut_file: ImageFile, root: str, checkpoint: Path, tmp: Path) -> None:
        network = NETWORK.model_copy(update={"sobel": sobel})
        job = PretrainJob(key="k", label="l", method=method, network=network, seed=0, images=(astronaut_file,),
                          augmentation=AugmentConfig(preset="full"), compute=compute)
        tasks.pretrain(job, MemoryRecorder(), tmp)

    return run


def probing(preset: str):
    def run(compute: ComputeConfig, astronaut_file: ImageFile, root: str, checkpoint: Path, tmp: Path) -> None:
        config = ProbeConfig(preset=preset, epochs=1, train_samples=60, test_samples=30, test_crops="center")
        job = ProbeJob(
            key="p",
            label="p",
            evaluation="linear_probe",
            pretrain_key="random",
            network=NETWORK,
            probe=config,
            dataset="fashion_mnist",
            data_root=root,
            seed=0,
            compute=compute,
            cells=tuple(ProbeCell(layer=layer, key=layer, label=layer) for layer in ("conv1", "conv5")),
        )
        tasks.probe(job, checkpoint, MemoryRecorder())

    return run


def finetuning(compute: ComputeConfig, astronaut_file: ImageFile, root: str, checkpoint: Path, tmp: Path) -> None:
    config = FinetuneConfig(preset="fast", epochs=1, batch_size=16, train_samples=40, test_samples=20)
    job = FinetuneJob(
        key="f",
        label="f",
        evaluation="finetune_frozen",
        pretrain_key="random",
        network=NETWORK,
        finetune=config,
        frozen=2,
        dataset="fashion_mnist",
        data_root=root,
        seed=0,
        compute=compute,
        cells=(JobCell(key="f", label="f"),),
    )
    finetune.finetune(job, checkpoint, MemoryRecorder(), tmp)


def stylising(compute: ComputeConfig, astronaut_file: ImageFile, root: str, checkpoint: Path, tmp: Path) -> None:
    hubble = ImageFile(path=str(STYLES_DIR / "hubble.jpg"), sha256=sha256_file(STYLES_DIR / "hubble.jpg"))
    pair = StyleCell(content=astronaut_file, style=hubble, key="p", label="p")
    job = StyleJob(
        key="s",
        label="s",
        evaluation="style_transfer",
        pretrain_key="random",
        network=NETWORK,
        style=StyleConfig(size=64, steps=2),
        seed=0,
        compute=compute,
        cells=(pair,),
    )
    style_transfer.stylise(job, checkpoint, MemoryRecorder(), tmp)


TINY = {"samples": 16, "epochs": 1, "batch_size": 8}
# loop -> (how to run it, where the trunk runs in it, where the probe heads run in it)
RUNS = {
    "rotnet": (pretraining(RotNetConfig(**TINY)), {"workers.methods.rotnet.training_step"}, set()),
    "bigan": (
        pretraining(BiGANConfig(**TINY, z_dim=16, gan_channels=8)), {"workers.methods.bigan.training_step"}, set(),
    ),
    "deepcluster": (
        pretraining(DeepClusterConfig(**TINY, k=4, pca_dim=8, kmeans_iterations=3), sobel=True),
        {"workers.methods.deepcluster.features", "workers.methods.deepcluster.training_step"}, set(),
    ),
    "probe, cached features": (
        probing("fast"), {"workers.probes.extract"}, {"workers.probes.step", "workers.probes.evaluate"},
    ),
    "probe, trunk every batch": (
        probing("asano2020"), {"workers.probes.train_epoch", "workers.probes.evaluate"},
        {"workers.probes.step", "workers.probes.evaluate"},
    ),
    "finetune": (finetuning, {"workers.methods.supervised.training_step", "workers.finetune.evaluate"}, set()),
    "style transfer": (stylising, {"workers.style_transfer.__init__", "workers.style_transfer.__call__"}, set()),
}


@pytest.mark.parametrize("loop", list(RUNS))
def test_every_loop_computes_as_its_job_says(loop, seen, astronaut_file, fashion_root, trunk_checkpoint, tmp_path):
    """A bf16 + channels_last job: every forward of the trunk in the loop returns bfloat16
    channels_last maps, and the probe heads bfloat16 logits, in every place the loop runs them.
    Mutations tried (each fails here): autocast left out of ProbeTrainer.evaluate (both probe
    loops: float32 heads), `compute.prepare` left out of tasks.probe (NCHW maps), DeepCluster's
    features computed outside `self.compute.autocast()` (float32 at deepcluster.features)."""
    run, trunk_places, head_places = RUNS[loop]
    run(BF16, astronaut_file, fashion_root, trunk_checkpoint, tmp_path)
    for part, places in (("trunk", trunk_places), ("heads", head_places)):
        ran = [s for s in seen[part] if s.where not in SHAPE_RUNS]
        assert {s.where for s in ran} == places, f"{loop}: the {part} ran in {sorted({s.where for s in ran})}"
        wrong = sorted({(s.where, str(sorted(map(str, s.dtypes))), s.channels_last) for s in ran
                        if s.dtypes != {torch.bfloat16} or (part == "trunk" and not s.channels_last)})
        assert not wrong, f"{loop}: not bf16 + channels_last: {wrong}"


def test_an_fp32_job_computes_in_float32_and_nchw(seen, astronaut_file, fashion_root, trunk_checkpoint, tmp_path):
    """The default, as before the setting existed (the spy above sees the difference)."""
    probing("asano2020")(FP32, astronaut_file, fashion_root, trunk_checkpoint, tmp_path)
    ran = [s for s in seen["trunk"] + seen["heads"] if s.where not in SHAPE_RUNS]
    assert ran and all(s.dtypes == {torch.float32} for s in ran)
    assert not any(s.channels_last for s in seen["trunk"] if s.where not in SHAPE_RUNS)


def test_the_trunk_of_a_bf16_run_is_saved_in_float32(tmp_path, astronaut_file):
    """Parameters stay float32 under autocast: a bf16 checkpoint loads where an fp32 one does."""
    job = PretrainJob(key="k", label="l", method=RotNetConfig(**TINY), network=NETWORK, seed=0,
                      images=(astronaut_file,), augmentation=AugmentConfig(preset="full"), compute=BF16)
    state = torch.load(tasks.pretrain(job, MemoryRecorder(), tmp_path), weights_only=True)
    assert {t.dtype for t in state["trunk"].values() if t.is_floating_point()} == {torch.float32}
    assert PretrainJob.model_validate(state["job"]).compute == BF16
    assert state["job"]["compute"] == {"precision": "bf16", "channels_last": True, "compile": False}
