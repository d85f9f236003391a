"""A method's `snapshots`: the trunk saved during one run, as the shared loop reaches each sample
count (tiny real RotNet runs on the bundled astronaut)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from contract.augmentation import AugmentConfig
from contract.jobs import ImageFile, PretrainJob
from contract.methods import RotNetConfig, snapshot_artifact
from contract.network import NetworkConfig
from contract.recorder import MemoryRecorder
from workers import tasks

# 64 // 16 = 4 steps an epoch, 2 epochs: a budget of 128 samples; snapshots at steps 2 and 6.
METHOD = RotNetConfig(samples=64, epochs=2, batch_size=16, lr=0.05, snapshots=(32, 96))


def job(image: ImageFile, **settings: object) -> PretrainJob:
    return PretrainJob(
        key="rotnet", label="rotnet s0", method=METHOD, network=NetworkConfig(width=0.25, input_size=64), seed=0,
        images=(image,), augmentation=AugmentConfig(preset="full"), **settings,  # type: ignore[arg-type]
    )


def trunk_of(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["trunk"]


def run(pretrain: PretrainJob, workdir: Path, resume: Path | None = None) -> MemoryRecorder:
    workdir.mkdir()
    recorder = MemoryRecorder()
    tasks.pretrain(pretrain, recorder, workdir, resume)
    return recorder


def test_a_snapshot_is_the_runs_trunk_at_that_step(tmp_path: Path, astronaut_file: ImageFile):
    """The snapshot after 32 samples equals the trunk of the same run stopped after 2 steps
    (its schedule still the whole run's), and differs from the run's end. Mutation tried:
    saving the snapshot before the step's optimiser update fails it."""
    recorder = run(job(astronaut_file), tmp_path / "full")
    names = [p.name for p in recorder.artifacts[None]]
    assert [n for n in names if n.startswith("trunk_at")] == [snapshot_artifact(32), snapshot_artifact(96)]
    snapshot = trunk_of(tmp_path / "full" / snapshot_artifact(32))
    assert torch.load(tmp_path / "full" / snapshot_artifact(32), weights_only=True)["step"] == 2
    stopped = trunk_of(tasks.pretrain(job(astronaut_file, max_steps=2), MemoryRecorder(), tmp_path))
    final = trunk_of(tmp_path / "full" / "checkpoint.pt")
    assert snapshot.keys() == stopped.keys() == final.keys()
    for key in snapshot:
        assert torch.equal(snapshot[key], stopped[key]), key
    assert not torch.equal(snapshot["blocks.0.conv.weight"], final["blocks.0.conv.weight"])


def test_a_resumed_run_takes_the_snapshots_after_its_resume_point(tmp_path: Path, astronaut_file: ImageFile):
    """Resumed from step 4, a run saves only the snapshot after it (96 samples: step 6), equal
    to the uninterrupted run's; the one before (step 2) is the earlier attempt's."""
    (tmp_path / "full").mkdir()
    tasks.pretrain(job(astronaut_file, checkpoint_every=4), MemoryRecorder(), tmp_path / "full")
    resume = tmp_path / "resume.pt"
    resume.write_bytes((tmp_path / "full" / "resume.pt").read_bytes())
    again = run(job(astronaut_file, checkpoint_every=4), tmp_path / "again", resume)
    assert [p.name for p in again.artifacts[None] if p.name.startswith("trunk_at")] == [snapshot_artifact(96)]
    resumed, uninterrupted = (trunk_of(tmp_path / d / snapshot_artifact(96)) for d in ("again", "full"))
    for key in resumed:
        assert torch.equal(resumed[key], uninterrupted[key]), key


@pytest.mark.parametrize("snapshots, message", [
    ((96, 32), "ascending"),
    ((40,), "a multiple of batch_size 16"),
    ((128,), "below the run's 128 samples"),
])
def test_snapshots_outside_the_run_are_refused(snapshots: tuple[int, ...], message: str):
    with pytest.raises(ValueError, match=message):
        RotNetConfig(samples=64, epochs=2, batch_size=16, snapshots=snapshots)
