"""The paper's own images: the three single images, named, pinned by upstream's SHA-256 and read
from a folder the user fills; and the ten ImageNet images upstream chose for N = 10."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from contract.images import bundled_photos, sha256_file
from contract.paper_images import CHOSEN, PAPER_IMAGES, PAPER_IMAGES_ENV, PaperImage, paper_images_dir
from orchestrator.cli.main import main
from orchestrator.errors import SpecError
from orchestrator.grid import expand
from orchestrator.spec import Spec
from orchestrator.sweep import prepare
from tests.conftest import TINY

PAPER_TINY = TINY.replace("images: [astronaut]", "images: [ameyoko]")


@pytest.fixture
def folder(monkeypatch, tmp_path: Path) -> Path:
    """The user's paper-images folder, empty: MONOSWEEP_PAPER_IMAGES points at it."""
    path = tmp_path / "paper"
    path.mkdir()
    monkeypatch.setenv(PAPER_IMAGES_ENV, str(path))
    return path


def test_the_folder_is_the_variable_or_the_cache(monkeypatch, tmp_path: Path):
    monkeypatch.delenv(PAPER_IMAGES_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert paper_images_dir() == tmp_path / "monosweep" / "paper_images"
    monkeypatch.setenv(PAPER_IMAGES_ENV, str(tmp_path / "mine"))
    assert paper_images_dir() == tmp_path / "mine"


def test_validate_and_plan_need_no_paper_image(folder: Path, write_spec, capsys):
    """Keys come from the pins: a machine without the images (CI) plans the paper grid."""
    spec = write_spec(PAPER_TINY)
    assert main(["validate", str(spec)]) == 0
    assert main(["plan", str(spec), "--estimate"]) == 0
    rotnet = [j for j in prepare(spec, reads_images=False).sweep.pretrain_jobs.values() if j.images]
    assert {f.sha256 for j in rotnet for f in j.images} == {PAPER_IMAGES["ameyoko"].sha256}
    assert not any(folder.iterdir())


@pytest.mark.parametrize("command", ["run", "smoke", "resubmit"])
def test_a_missing_paper_image_stops_a_run_before_any_compute(command, folder: Path, write_spec, capsys):
    """Mutation that fails it: check_images skipping the paper images whatever the command."""
    spec = write_spec(PAPER_TINY)
    assert main([command, str(spec)]) == 2
    err = capsys.readouterr().err
    line = PAPER_TINY.splitlines().index("  images: [ameyoko]") + 1
    where = f"{spec}:{line}: grid.images[0]"
    assert f"{where}: 'ameyoko': the paper image ameyoko.jpg is not at {folder}/ameyoko.jpg" in err
    upstream = "https://github.com/yukimasano/single_img_pretraining/blob/04b07233154c614c6ae53535fe80de81e904ca8f"
    assert f"upstream keeps it at {upstream}/images/ameyoko.jpg" in err
    assert f"download it to {folder}/ameyoko.jpg, or set {PAPER_IMAGES_ENV}" in err
    assert not (spec.parent / "mlflow.db").exists()  # nothing recorded, nothing started


def test_a_paper_image_with_other_bytes_is_refused(folder: Path, write_spec):
    shutil.copy(bundled_photos()["astronaut"], folder / "ameyoko.jpg")
    with pytest.raises(SpecError, match=r"grid\.images\[0\]: 'ameyoko': .*/paper/ameyoko\.jpg holds other bytes than "
                                        r"the ameyoko\.jpg upstream keeps \(sha256 [0-9a-f]{16}\.\.\., "
                                        r"not 78c2681de2dbfb41\.\.\.\): replace it with the file at https://"):
        prepare(write_spec(PAPER_TINY))


def test_a_paper_image_with_upstreams_bytes_is_read_and_keyed_by_content(folder: Path, write_spec, monkeypatch):
    """With the pinned bytes in place a run goes ahead, and the key is the content's: the same
    as the same bytes named by path. (The real pins need upstream's files, which CI has not:
    here the pin is a bundled photo's hash.)"""
    astronaut = bundled_photos()["astronaut"]
    monkeypatch.setitem(PAPER_IMAGES, "ameyoko", PaperImage("ameyoko.jpg", sha256_file(astronaut)))
    shutil.copy(astronaut, folder / "ameyoko.jpg")
    paper = prepare(write_spec(PAPER_TINY, "paper.yaml")).sweep
    by_path = prepare(write_spec(TINY.replace("[astronaut]", f"[{astronaut}]"), "path.yaml")).sweep
    assert set(paper.pretrain_jobs) == set(by_path.pretrain_jobs)


def test_paper_names_and_the_chosen_list_validate(tmp_path: Path):
    data = yaml.safe_load(TINY)
    data["grid"]["images"] = [*PAPER_IMAGES, {"dataset": "imagenet", "chosen": "asano2020"},
                              {"dataset": "imagenet", "n": 10}]
    sweep = expand(Spec.model_validate(data, context={"base_dir": tmp_path}), tmp_path)
    assert {c.images for c in sweep.cells if c.images} == {
        "N1 ameyoko", "N1 sf", "N1 animals", "N10 imagenet asano2020", "N10 imagenet"}
    chosen = {j.drawn.chosen for j in sweep.pretrain_jobs.values() if j.drawn}
    assert chosen == {CHOSEN["asano2020"], None}
    # The list and a seeded draw of ten are different sources: different keys.
    keys = {(j.coordinates["images"], j.coordinates["augmentation"]): j.key
            for j in sweep.pretrain_jobs.values() if j.drawn}
    assert len(set(keys.values())) == len(keys) == 4  # two sources x two augmentations


def test_the_chosen_list_is_upstreams_ten():
    """single_img_pretraining make_dataset_single.py l.240-246, in its order."""
    assert CHOSEN["asano2020"][0] == "n04443257/n04443257_36457.JPEG"
    assert CHOSEN["asano2020"][-1] == "n02105412/n02105412_3932.JPEG"
    assert len(set(CHOSEN["asano2020"])) == 10


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"dataset": "cifar10", "chosen": "asano2020"}, "give `dataset: imagenet`"),
        ({"dataset": "imagenet", "chosen": "mine"}, "'mine' is not one of asano2020"),
        ({"dataset": "imagenet", "chosen": "asano2020", "n": 9}, "lists 10 images"),
        ({"dataset": "imagenet", "chosen": "asano2020", "draw_seed": 3}, "nothing to draw"),
        ("ameyokoo", "nor one of the paper images"),
    ],
)
def test_bad_paper_sources_are_rejected(bad, words, tmp_path: Path):
    data = yaml.safe_load(TINY)
    data["grid"]["images"] = [bad]
    with pytest.raises(ValueError, match=words):
        Spec.model_validate(data, context={"base_dir": tmp_path})
