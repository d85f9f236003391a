"""The grid of the CPU examples' controls and curves (#27): random with its BN statistics
re-estimated, the raw-pixel control, a method read at snapshots, equal feature counts. Pure:
spec -> cells -> jobs -> keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from contract.methods import snapshot_artifact
from orchestrator.grid import expand
from orchestrator.keys import content_key
from orchestrator.loading import SpecError, load_spec
from orchestrator.plan import plan
from orchestrator.spec import Spec
from tests.conftest import TINY


def sweep_of(tmp_path: Path, **changes: object):
    data = yaml.safe_load(TINY)
    for where, value in changes.items():
        *parents, last = where.split(".")
        node = data
        for part in parents:
            node = node[part]
        node[last] = value
    return expand(Spec.model_validate(data, context={"base_dir": tmp_path}), tmp_path)


def by_label(sweep) -> dict[str, object]:
    return {job.label: job for job in sweep.pretrain_jobs.values()}


def test_random_with_pretext_statistics_is_a_trunk_per_row_of_images(tmp_path: Path):
    """`random(bn=pretext)` reads the row's images and augmentation: one trunk per (images,
    augmentation, seed), its rows named so; plain `random` keeps its one trunk and its key."""
    plain = sweep_of(tmp_path)
    sweep = sweep_of(tmp_path, **{"grid.method": ["random", {"name": "random", "bn_statistics": "pretext"}]})
    jobs = by_label(sweep)
    assert set(jobs) == {
        "random s0", "random(bn=pretext) N1 astronaut full s0", "random(bn=pretext) N1 astronaut none s0"
    }
    pretext = jobs["random(bn=pretext) N1 astronaut none s0"]
    assert pretext.images and pretext.augmentation.preset == "none" and pretext.labels is None  # type: ignore[attr-defined]
    assert jobs["random s0"].key == by_label(plain)["random s0"].key  # type: ignore[attr-defined]
    rows = {c.method for c in sweep.cells}
    assert rows == {"random", "random(bn=pretext)"}


def test_random_with_probe_train_statistics_is_a_trunk_per_probe_dataset(tmp_path: Path):
    sweep = sweep_of(
        tmp_path, **{"grid.method": [{"name": "random", "bn_statistics": "probe_train"}],
                     "grid.probe_dataset": ["fashion_mnist", "cifar10"]},
    )
    jobs = by_label(sweep)
    assert set(jobs) == {"random(bn=probe_train) fashion_mnist s0", "random(bn=probe_train) cifar10 s0"}
    for job in jobs.values():
        assert job.labels is not None and not job.images and job.augmentation is None  # type: ignore[attr-defined]
    for cell in sweep.cells:  # each dataset's cells read the trunk made from its own train split
        assert jobs[f"random(bn=probe_train) {cell.probe_dataset} s0"].key == cell.pretrain_key  # type: ignore[attr-defined]


def test_pixels_is_a_trunk_whose_network_is_its_input(tmp_path: Path):
    sweep = sweep_of(tmp_path, **{"grid.method": ["random", "pixels"]})
    jobs = by_label(sweep)
    assert jobs["pixels s0"].network.pixels and not jobs["random s0"].network.pixels  # type: ignore[attr-defined]
    assert jobs["pixels s0"].key != jobs["random s0"].key  # type: ignore[attr-defined]
    probes = [j for j in sweep.evaluation_jobs.values() if j.pretrain_key == jobs["pixels s0"].key]  # type: ignore[attr-defined]
    assert probes and all(j.network.pixels for j in probes)
    assert "pixels s0 conv1 fashion_mnist" in {c.label for c in sweep.cells}


def test_snapshots_are_trunks_of_their_run(tmp_path: Path):
    """RotNet read at 32 and 64 of its 128 samples: the snapshots' cells key "the trunk of run
    K after n samples", their jobs wait for K and read the snapshot's artifact, and every row
    says its samples; without snapshots the run's key is as before."""
    rotnet = {"name": "rotnet", "samples": 128, "epochs": 1, "batch_size": 32}
    plain = by_label(sweep_of(tmp_path, **{"grid.method": [rotnet], "grid.augmentation": ["full"]}))
    sweep = sweep_of(tmp_path, **{"grid.method": [{**rotnet, "snapshots": [32, 64]}], "grid.augmentation": ["full"]})
    (run,) = sweep.pretrain_jobs.values()
    assert run.label == "rotnet@128 N1 astronaut full s0"
    assert run.key != plain["rotnet N1 astronaut full s0"].key  # type: ignore[attr-defined]
    assert [c.method for c in sweep.cells if c.layer == "conv1"] == ["rotnet@32", "rotnet@64", "rotnet@128"]
    assert {c.pretrain_key for c in sweep.cells} == {run.key}
    checkpoints = {}
    for job in sweep.evaluation_jobs.values():
        assert job.pretrain_key == run.key
        checkpoints[job.label] = job.checkpoint
    assert checkpoints == {
        "rotnet@32 N1 astronaut full s0 fashion_mnist": snapshot_artifact(32),
        "rotnet@64 N1 astronaut full s0 fashion_mnist": snapshot_artifact(64),
        "rotnet@128 N1 astronaut full s0 fashion_mnist": "checkpoint.pt",
    }
    cell = next(c for c in sweep.cells if c.method == "rotnet@32" and c.layer == "conv2")
    spec = sweep.spec
    from orchestrator.keys import settings_material

    trunk = content_key("snapshot", {"pretrain": run.key, "samples": 32})
    probe = {"pretrain": trunk, "probe": settings_material(spec.probe), "dataset": "fashion_mnist"}
    assert cell.key == content_key("cell", {**probe, "layer": "conv2"})
    # Nothing finished: the run is planned once, and every evaluation waits for it.
    planned = plan(sweep, set(), set())
    assert [j.key for j in planned.pretrain] == [run.key] and len(planned.evaluation) == 3


def test_a_smoke_run_reads_the_capped_runs_own_trunk(tmp_path: Path):
    """A smoke run stops its RotNet before any snapshot: every evaluation shape it runs reads
    the capped run's checkpoint. Mutation tried: leaving a snapshot job's `checkpoint` fails it
    (the snapshot's evaluation shape comes first)."""
    from orchestrator.smoke import shapes

    rotnet = {"name": "rotnet", "samples": 128, "epochs": 1, "batch_size": 32, "snapshots": [32]}
    sweep = sweep_of(tmp_path, **{"grid.method": [rotnet], "grid.augmentation": ["full"]})
    evaluations = [s.job for s in shapes(sweep, 3) if s.stage == "evaluation"]
    assert evaluations and all(job.checkpoint == "checkpoint.pt" for job in evaluations)


def test_equal_features_are_in_the_probe_keys_only_when_set(tmp_path: Path):
    plain = {c.label: c.key for c in sweep_of(tmp_path).cells}
    equal = {c.label: c.key for c in sweep_of(tmp_path, **{"probe.features": 1152}).cells}
    assert plain.keys() == equal.keys() and not set(plain.values()) & set(equal.values())
    none = {c.label: c.key for c in sweep_of(tmp_path, **{"probe.features": None}).cells}
    assert none == plain


@pytest.mark.parametrize("text, where", [
    ("network: {width: 0.25, input_size: 64, pixels: true}", "network"),
    ("grid:\n  method: [pixels]\n  evaluation: [linear_probe, style_transfer]", "grid"),
])
def test_pixels_where_it_cannot_be_read_is_a_located_error(text: str, where: str, write_spec, tmp_path: Path):
    data = yaml.safe_load(TINY)
    for key, value in yaml.safe_load(text).items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    path = write_spec(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(SpecError) as error:
        load_spec(path)
    assert f"{path.name}:" in str(error.value) and where in str(error.value) and "pixels" in str(error.value)
