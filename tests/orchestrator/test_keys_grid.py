"""Grid expansion, content keys and planning: pure, so tested exhaustively and fast."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from contract.augmentation import AUGMENTATION_PRESETS
from contract.datasets import DEFAULT_DATA_ROOTS
from contract.images import bundled_photos
from orchestrator.grid import expand
from orchestrator.keys import canonical_json, content_key
from orchestrator.plan import plan
from orchestrator.spec import Spec
from tests.conftest import TINY


def spec_from(data: dict, base_dir: Path) -> Spec:
    return Spec.model_validate(data, context={"base_dir": base_dir})


@pytest.fixture
def base(tmp_path: Path) -> dict:
    return yaml.safe_load(TINY)


def keys(data: dict, base_dir: Path) -> dict[str, str]:
    sweep = expand(spec_from(data, base_dir), base_dir)
    return {c.label: c.key for c in sweep.cells}


def test_quickstart_shape(base, tmp_path):
    sweep = expand(spec_from(base, tmp_path), tmp_path)
    # random ignores images and augmentation: 5 cells, not 10.
    assert len(sweep.cells) == 15
    assert len(sweep.pretrain_jobs) == 3 and len(sweep.evaluation_jobs) == 3
    assert all(len(job.cells) == 5 for job in sweep.evaluation_jobs.values())
    assert len({c.key for c in sweep.cells}) == 15
    labels = {c.label for c in sweep.cells}
    assert "rotnet N1 astronaut full s0 conv2 fashion_mnist" in labels
    assert "random s0 conv1 fashion_mnist" in labels


def test_keys_are_stable_across_processes(base, tmp_path):
    here = keys(base, tmp_path)
    code = (
        "import yaml,sys; from pathlib import Path; from tests.orchestrator.test_keys_grid import keys;"
        f"print(yaml.safe_dump(keys(yaml.safe_load(sys.stdin.read()), Path({str(tmp_path)!r}))))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], input=yaml.safe_dump(base), capture_output=True, text=True, env=env,
        check=True, cwd=Path(__file__).parents[2],
    ).stdout
    assert yaml.safe_load(out) == here


def test_canonical_json_ignores_dict_order():
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": [1, 2], "b": 1})
    assert content_key("x", {"a": 1, "b": 2}) == content_key("x", {"b": 2, "a": 1})
    assert content_key("x", {"a": 1}) != content_key("y", {"a": 1})


def _set(data: dict, path: str, value) -> dict:
    data = yaml.safe_load(yaml.safe_dump(data))
    node = data
    *parents, last = path.split(".")
    for p in parents:
        node = node[int(p)] if p.isdigit() else node.setdefault(p, {})
    node[last] = value
    return data


# Settings that change results: every rotnet key must change.
CHANGES = {
    "method hyper-parameter": ("grid.method.1.lr", 0.2),
    "pretrain length": ("grid.method.1.samples", 256),
    "seed": ("grid.seed", [1]),
    "network width": ("network.width", 0.5),
    "input size": ("network.input_size", 96),
    "probe epochs": ("probe.epochs", 3),
    "probe protocol": ("probe.preset", "asano2020"),
    "augmentation parameter": ("grid.augmentation", [{"preset": "full", "rotation": 10}, "none"]),
    "vertical flip": ("grid.augmentation", [{"preset": "full", "vflip": 0.5}, "none"]),
    "network arch": ("network.arch", "alexnet"),
    "sobel input": ("network.sobel", True),
    "probe test crops": ("probe.test_crops", "ten"),
    "probe BN affine": ("probe.bn_affine", True),
}


@pytest.mark.parametrize("change", CHANGES)
def test_key_changes_with_every_result_setting(change, base, tmp_path):
    path, value = CHANGES[change]
    before = keys(base, tmp_path)
    after = keys(_set(base, path, value), tmp_path)
    label = "rotnet N1 astronaut full s0 conv1 fashion_mnist"
    renamed = {
        "seed": ("s0", "s1"),
        "augmentation parameter": ("full", "full(rotation=10.0)"),
        "vertical flip": ("full", "full(vflip=0.5)"),
    }
    label_after = label.replace(*renamed.get(change, ("", "")))
    assert label_after in after
    assert before[label] != after[label_after]


def test_augmentation_values_not_names_make_the_key(base, tmp_path):
    spelled_out = {**AUGMENTATION_PRESETS["full"], "preset": "none"}  # full's values, another name
    a = expand(spec_from(base, tmp_path), tmp_path)
    b = expand(spec_from(_set(base, "grid.augmentation", [spelled_out, "none"]), tmp_path), tmp_path)
    assert set(a.pretrain_jobs) == set(b.pretrain_jobs)
    assert {c.key for c in a.cells} == {c.key for c in b.cells}


def test_cell_keys_differ_per_layer_and_dataset(base, tmp_path):
    cells = expand(spec_from(base, tmp_path), tmp_path).cells
    rot = [c for c in cells if c.augmentation == "full"]
    assert len({c.key for c in rot}) == 5
    assert len({c.pretrain_key for c in rot}) == 1 and len({c.job_key for c in rot}) == 1


# Settings that do not change results: no key may change.
NEUTRAL = {
    "sweep name": ("name", "other"),
    "tracking uri": ("tracking_uri", "http://127.0.0.1:5000"),
    "ray address": ("ray_address", "ray://head:10001"),
    "resources": ("resources", {"pretrain": {"cpus": 2, "gpus": 1}}),
    "retries": ("retries", 5),
    "checkpoint interval": ("checkpoint_every", 7),
    "divergence threshold": ("divergence_threshold", 0.5),
    "no divergence check": ("divergence_threshold", None),
    "fault injection": ("faults", [{"action": "fail"}]),
    "storage": ("storage", "/shared/tune"),
    "data root": ("data_roots", {"fashion_mnist": "/elsewhere"}),
    "preset spelled out": (
        "probe",
        {"preset": "fast", "epochs": 2, "train_samples": 500, "test_samples": 500, "batch_size": 256},
    ),
}


@pytest.mark.parametrize("change", NEUTRAL)
def test_key_stays_for_settings_that_do_not_change_results(change, base, tmp_path):
    path, value = NEUTRAL[change]
    assert keys(base, tmp_path) == keys(_set(base, path, value), tmp_path)


def test_image_content_not_path_makes_the_key(base, tmp_path):
    src = bundled_photos()["astronaut"]
    shutil.copy(src, tmp_path / "copy.jpg")
    same = _set(base, "grid.images", ["copy.jpg"])
    k1 = keys(base, tmp_path)["rotnet N1 astronaut full s0 conv1 fashion_mnist"]
    k2 = keys(same, tmp_path)["rotnet N1 copy full s0 conv1 fashion_mnist"]
    assert k1 == k2  # same bytes elsewhere: same result
    data = bytearray(src.read_bytes())
    data[-3] ^= 0xFF
    (tmp_path / "copy.jpg").write_bytes(bytes(data))
    k3 = keys(same, tmp_path)["rotnet N1 copy full s0 conv1 fashion_mnist"]
    assert k3 != k1  # one byte differs: another result


def test_random_ignores_images_and_augmentation(base, tmp_path):
    grown = _set(base, "grid.images", ["astronaut", "coffee"])
    a = {k: v for k, v in keys(base, tmp_path).items() if k.startswith("random")}
    b = {k: v for k, v in keys(grown, tmp_path).items() if k.startswith("random")}
    assert a == b and len(a) == 5


def test_exclusion_rules(base, tmp_path, write_spec):
    (tmp_path / "pool").mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        shutil.copy(bundled_photos()[name], tmp_path / "pool" / f"{name}.jpg")
    data = _set(base, "grid.images", ["astronaut", {"pool": "pool", "n": 3}])
    data["exclude"] = [{"method": "rotnet", "n": {"gt": 1}}, {"layer": ["conv4", "conv5"], "method": "random"}]
    sweep = expand(spec_from(data, tmp_path), tmp_path)
    assert not [c for c in sweep.cells if c.method == "rotnet" and c.n == 3]
    assert {c.layer for c in sweep.cells if c.method == "random"} == {"conv1", "conv2", "conv3"}
    assert len(sweep.cells) == 3 + 10


def test_pool_draw_is_seeded_and_recorded(base, tmp_path):
    (tmp_path / "pool").mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        shutil.copy(bundled_photos()[name], tmp_path / "pool" / f"{name}.jpg")

    def pick(seed: int):
        pool = [{"pool": "pool", "n": 2, "draw_seed": seed}]
        return expand(spec_from(_set(base, "grid.images", pool), tmp_path), tmp_path)

    a, b = pick(0), pick(0)
    assert [j.images for j in a.pretrain_jobs.values()] == [j.images for j in b.pretrain_jobs.values()]
    draws = {tuple(f.sha256 for f in j.images) for s in range(6) for j in pick(s).pretrain_jobs.values() if j.images}
    assert len(draws) > 1


def test_pool_smaller_than_n_is_an_error(base, tmp_path):
    (tmp_path / "pool").mkdir()
    shutil.copy(bundled_photos()["coffee"], tmp_path / "pool" / "coffee.jpg")
    with pytest.raises(ValueError, match="n = 5 but pool 'pool' holds 1 images"):
        spec_from(_set(base, "grid.images", [{"pool": "pool", "n": 5}]), tmp_path)


def test_plan_skips_finished_and_reuses_pretrain(base, tmp_path):
    sweep = expand(spec_from(base, tmp_path), tmp_path)
    fresh = plan(sweep, set(), set())
    assert len(fresh.pretrain) == 3 and len(fresh.evaluation) == 3 and fresh.pending_cells == 15
    done_cells = {c.key for c in sweep.cells if c.layer != "conv5"}
    done_pretrain = set(sweep.pretrain_jobs)
    grown = plan(sweep, done_cells, done_pretrain)
    assert grown.pretrain == [] and sorted(grown.reused_pretrain) == sorted(done_pretrain)
    assert [tuple(c.layer for c in job.cells) for job in grown.evaluation] == [("conv5",)] * 3
    assert plan(sweep, {c.key for c in sweep.cells}, done_pretrain).empty


def _methods(base: dict, *methods) -> dict:
    return _set(base, "grid.method", list(methods))


def test_supervised_is_trained_once_per_probe_dataset_on_its_train_split(base, tmp_path):
    data = _set(
        _methods(base, "random", {"name": "supervised", "epochs": 1}),
        "grid.probe_dataset",
        ["fashion_mnist", "cifar10"],
    )
    data = _set(data, "grid.images", ["astronaut", "coffee"])  # ignored by both methods
    sweep = expand(spec_from(data, tmp_path), tmp_path)
    supervised = {k: j for k, j in sweep.pretrain_jobs.items() if j.method.name == "supervised"}
    assert len(supervised) == 2
    by_dataset = {j.labels.dataset: k for k, j in supervised.items()}
    assert set(by_dataset) == {"fashion_mnist", "cifar10"}
    for job in supervised.values():
        assert job.images == () and job.augmentation is None and job.drawn is None
    roots = {j.labels.dataset: j.labels.data_root for j in supervised.values()}
    assert roots == {
        "fashion_mnist": DEFAULT_DATA_ROOTS["fashion_mnist"],
        "cifar10": str((tmp_path / "data/cifar10").resolve()),
    }
    # Every supervised cell of dataset D probes the trunk trained on D.
    cells = [c for c in sweep.cells if c.method == "supervised"]
    assert len(cells) == 10 and all(c.pretrain_key == by_dataset[c.probe_dataset] for c in cells)
    assert all(c.images is None and c.augmentation is None and c.n is None for c in cells)
    assert {j.label for j in supervised.values()} == {"supervised fashion_mnist s0", "supervised cifar10 s0"}
    # random stays one pretrain job for both datasets.
    assert len({c.pretrain_key for c in sweep.cells if c.method == "random"}) == 1


def test_supervised_key_is_its_dataset_not_where_the_data_lies(base, tmp_path):
    data = _methods(base, {"name": "supervised", "epochs": 1})
    moved = _set(data, "data_roots", {"fashion_mnist": "/elsewhere"})
    key = lambda d: {j.key for j in expand(spec_from(d, tmp_path), tmp_path).pretrain_jobs.values()}  # noqa: E731
    assert key(data) == key(moved)
    jobs = expand(spec_from(moved, tmp_path), tmp_path).pretrain_jobs.values()
    assert [j.labels.data_root for j in jobs] == ["/elsewhere"]
    other = _set(data, "grid.probe_dataset", ["cifar10"])
    assert key(data) != key(other)


def test_deepcluster_trains_and_probes_behind_a_sobel_filter(base, tmp_path):
    data = _methods(
        base, {"name": "deepcluster", "samples": 64, "k": 4, "epochs": 1}, {"name": "rotnet", "samples": 64}
    )
    sweep = expand(spec_from(data, tmp_path), tmp_path)
    sobel = {j.method.name: j.network.sobel for j in sweep.pretrain_jobs.values()}
    assert sobel == {"deepcluster": True, "rotnet": False}
    for job in sweep.evaluation_jobs.values():
        assert job.network == sweep.pretrain_jobs[job.pretrain_key].network
    # Without Sobel, DeepCluster is another pre-training: another key.
    plain = _set(data, "grid.method.0.sobel", False)
    keys_of = lambda d: {j.method.name: j.key for j in expand(spec_from(d, tmp_path), tmp_path).pretrain_jobs.values()}  # noqa: E731
    assert keys_of(plain)["deepcluster"] != keys_of(data)["deepcluster"]
    assert keys_of(plain)["rotnet"] == keys_of(data)["rotnet"]


def test_dataset_draws_validate_and_plan_without_the_data(base, tmp_path):
    draws = [
        {"dataset": "imagenet", "n": 10},
        {"dataset": "imagenet", "n": "all"},
        {"dataset": "cifar10", "n": 10, "draw_seed": 1},
    ]
    data = _set(_set(base, "grid.images", draws), "data_roots", {"imagenet": "/nowhere/imagenet"})
    sweep = expand(spec_from(data, tmp_path), tmp_path)
    drawn = [j.drawn for j in sweep.pretrain_jobs.values() if j.drawn]
    assert [(d.dataset, d.n, d.draw_seed) for d in drawn] == [
        ("imagenet", 10, 0), ("imagenet", 10, 0), ("imagenet", 1281167, 0), ("cifar10", 10, 1), ("cifar10", 10, 1),
    ]  # full and none for each draw; the whole split once, without the generator
    assert drawn[0].data_root == "/nowhere/imagenet"
    assert {c.images for c in sweep.cells if c.images} == {"N10 imagenet", "N1281167 imagenet", "N10 cifar10 d1"}
    assert {c.n for c in sweep.cells if c.n} == {10, 1281167}


def test_a_whole_split_ignores_the_augmentation_axis(base, tmp_path):
    """N = all is the real images through each method's own loader (DatasetImages.real_images):
    no generator, so one trunk per method and seed, not one per augmentation, and its key holds
    no augmentation. Mutation that fails it: expand giving the whole split the axis's presets."""
    data = _set(base, "grid.images", [{"dataset": "cifar10", "n": "all"}, {"dataset": "cifar10", "n": 49999}])
    sweep = expand(spec_from(data, tmp_path), tmp_path)
    rotnet = [j for j in sweep.pretrain_jobs.values() if j.method.name == "rotnet"]
    whole = [j for j in rotnet if j.drawn.n == 50000]
    assert len(whole) == 1 and whole[0].augmentation is None and whole[0].drawn.real_images
    assert whole[0].label == "rotnet N50000 cifar10 s0"
    below = [j for j in rotnet if j.drawn.n == 49999]  # one image fewer: the generator, both presets
    assert len(below) == 2 and all(j.augmentation is not None and not j.drawn.real_images for j in below)
    cells = [c for c in sweep.cells if c.n == 50000]
    assert len(cells) == 5 and {c.augmentation for c in cells} == {None}
    assert "rotnet N50000 cifar10 s0 conv1 fashion_mnist" in {c.label for c in cells}


def test_the_loader_switch_is_key_neutral_on_and_keyed_off(base, tmp_path):
    """`loader: true` (the methods' own loaders, as before the switch) keeps every key; false
    moves them and shows in the label. Mutation that fails it: dropping KeyNeutral(True)."""
    from contract.augmentation import AugmentConfig
    from orchestrator.keys import settings_material

    assert "loader" not in settings_material(AugmentConfig(loader=True))
    assert settings_material(AugmentConfig(loader=False))["loader"] is False
    before = keys(base, tmp_path)
    on = keys(_set(base, "grid.augmentation", [{"preset": "full", "loader": True}, "none"]), tmp_path)
    assert on == before
    off = keys(_set(base, "grid.augmentation", ["full", {"preset": "none", "loader": False}]), tmp_path)
    label = "rotnet N1 astronaut none s0 conv1 fashion_mnist"
    assert off[label.replace("none", "none(loader=False)")] != before[label]
    full = "rotnet N1 astronaut full s0 conv1 fashion_mnist"
    assert off[full] == before[full]


def test_deepclusters_sampler_keeps_the_keys_of_uniform_and_moves_the_default():
    """`uniform` was the only behaviour before the setting: its keys stay. The default,
    upstream's executed sampler, trains on other samples: its keys move."""
    from contract.methods import DeepClusterConfig
    from orchestrator.keys import settings_material

    assert "sampler" not in settings_material(DeepClusterConfig(sampler="uniform"))
    assert settings_material(DeepClusterConfig())["sampler"] == "upstream"


@pytest.mark.parametrize(
    "change",
    [{"n": 11}, {"draw_seed": 1}, {"dataset": "cifar100"}],
)
def test_dataset_draw_keys_change_with_what_is_drawn(change, base, tmp_path):
    draw = {"dataset": "cifar10", "n": 10}

    def key(d: dict) -> set[str]:
        sweep = expand(spec_from(_set(base, "grid.images", [d]), tmp_path), tmp_path)
        return {j.key for j in sweep.pretrain_jobs.values()}

    assert key(draw) != key({**draw, **change})
    moved = _set(_set(base, "grid.images", [draw]), "data_roots", {"cifar10": "/moved"})
    assert key(draw) == {j.key for j in expand(spec_from(moved, tmp_path), tmp_path).pretrain_jobs.values()}


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"dataset": "cifar10", "n": 50001}, "holds 50000"),
        ({"dataset": "cifar10"}, "needs `n`"),
        ({"pool": "pool", "n": "all"}, "give `dataset` too"),
        ({"dataset": "cifar10", "photos": ["astronaut"]}, "exactly one of"),
        ({"dataset": "mnist", "n": 3}, "fashion_mnist"),
    ],
)
def test_bad_dataset_draws_are_rejected(bad, words, base, tmp_path):
    with pytest.raises(ValueError, match=words):
        spec_from(_set(base, "grid.images", [bad]), tmp_path)


@pytest.mark.parametrize("example", sorted(p.name for p in (Path(__file__).parents[2] / "examples").glob("*.yaml")))
def test_every_example_expands(example):
    from orchestrator.loading import load_spec

    path = Path(__file__).parents[2] / "examples" / example
    sweep = expand(load_spec(path), path.parent)
    assert sweep.cells and sweep.pretrain_jobs and sweep.evaluation_jobs
    assert len(sweep.cells) == len({c.key for c in sweep.cells})


EVALUATIONS = [
    "linear_probe",
    {"name": "finetune_frozen", "frozen": [0, 2, 5]},
    "style_transfer",
]


def test_evaluations_make_cells_and_jobs_of_their_own(base, tmp_path):
    base["grid"]["evaluation"] = EVALUATIONS
    sweep = expand(spec_from(base, tmp_path), tmp_path)
    by_kind = {
        kind: [c for c in sweep.cells if c.evaluation == kind]
        for kind in ("linear_probe", "finetune_frozen", "style_transfer")
    }
    # Three trunks (random, rotnet full, rotnet none): 5 layers, 3 values of k, 2 (content, style) pairs each.
    assert [len(v) for v in by_kind.values()] == [15, 9, 6]
    assert len(sweep.pretrain_jobs) == 3  # every evaluation reads the same trunks
    jobs = list(sweep.evaluation_jobs.values())
    assert sorted(type(j).__name__ for j in jobs).count("FinetuneJob") == 9
    assert sum(type(j).__name__ == "StyleJob" for j in jobs) == 3
    assert all(len(j.cells) == 2 for j in jobs if type(j).__name__ == "StyleJob")
    assert {c.frozen for c in by_kind["finetune_frozen"]} == {0, 2, 5}
    assert {(c.content, c.style) for c in by_kind["style_transfer"]} == {("astronaut", "hubble"), ("astronaut", "ihc")}
    assert all(c.probe_dataset is None for c in by_kind["style_transfer"])  # no labels read
    assert "rotnet N1 astronaut full s0 finetune k2 fashion_mnist" in {c.label for c in sweep.cells}
    assert len({c.key for c in sweep.cells}) == len(sweep.cells)


def test_linear_probe_keys_do_not_change_when_evaluations_are_added(base, tmp_path):
    before = keys(base, tmp_path)
    base["grid"]["evaluation"] = EVALUATIONS
    after = keys(base, tmp_path)
    assert {label: key for label, key in after.items() if label in before} == before


def test_finetune_and_style_keys_follow_their_own_settings(base, tmp_path):
    base["grid"]["evaluation"] = EVALUATIONS
    here = keys(base, tmp_path)
    finetune_cells = {label for label in here if " finetune " in label}
    style_cells = {label for label in here if " style " in label}
    changed = keys({**base, "finetune": {"preset": "fast"}}, tmp_path)
    assert {label for label in here if here[label] != changed[label]} == finetune_cells
    changed = keys({**base, "style": {"steps": 7}}, tmp_path)
    assert {label for label in here if here[label] != changed[label]} == style_cells
    # Style images count by content: the same picture under another path keeps the key.
    shutil.copy(bundled_photos()["astronaut"], tmp_path / "mine.jpg")
    moved = keys({**base, "style": {"contents": ["mine.jpg"]}}, tmp_path)
    assert sorted(moved.values()) == sorted(here.values())


def test_a_supervised_trunk_is_stylised_once_per_dataset_it_learned_from(base, tmp_path):
    base["grid"]["method"] = [{"name": "supervised", "epochs": 1}, "random"]
    base["grid"]["probe_dataset"] = ["fashion_mnist", "cifar10"]
    base["grid"]["evaluation"] = ["style_transfer"]
    sweep = expand(spec_from(base, tmp_path), tmp_path)
    datasets = [c.probe_dataset for c in sweep.cells]
    assert datasets.count("fashion_mnist") == datasets.count("cifar10") == 2  # supervised: per dataset
    assert datasets.count(None) == 2  # random: once


def test_exclusions_apply_to_evaluations(base, tmp_path):
    base["grid"]["evaluation"] = EVALUATIONS
    base["exclude"] = [{"evaluation": "finetune_frozen", "frozen": 0, "method": "rotnet"}]
    sweep = expand(spec_from(base, tmp_path), tmp_path)
    assert sorted(c.frozen for c in sweep.cells if c.evaluation == "finetune_frozen") == [0, 2, 2, 2, 5, 5, 5]


def test_cells_recorded_before_the_evaluation_axis_still_load():
    from orchestrator.grid import Cell

    old = {"key": "k", "label": "random s0 conv1 fashion_mnist", "pretrain_key": "p", "probe_job_key": "j",
           "method": "random", "n": None, "images": None, "augmentation": None, "layer": "conv1",
           "probe_dataset": "fashion_mnist", "seed": 0}  # a cells.json entry as db8df39 wrote it
    cell = Cell(**old)
    assert (cell.job_key, cell.evaluation, cell.layer) == ("j", "linear_probe", "conv1")
    assert "frozen" not in cell.coordinates()  # a coordinate of another kind, never recorded for it


def test_a_cell_has_its_kind_s_coordinates_only(base, tmp_path):
    base["grid"]["evaluation"] = EVALUATIONS
    sweep = expand(spec_from(base, tmp_path), tmp_path)
    shared = {"method", "n", "images", "augmentation", "evaluation", "probe_dataset", "seed"}
    own = {"linear_probe": {"layer"}, "finetune_frozen": {"frozen"}, "style_transfer": {"content", "style"}}
    for c in sweep.cells:
        assert set(c.coordinates()) == shared | own[c.evaluation]
    for job in sweep.evaluation_jobs.values():  # the worker runs the kind the job names
        assert job.evaluation == {"ProbeJob": "linear_probe", "FinetuneJob": "finetune_frozen",
                                  "StyleJob": "style_transfer"}[type(job).__name__]
