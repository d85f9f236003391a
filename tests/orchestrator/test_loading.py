"""Bad experiment files: one clear, located error each, exit code 2, before Ray or MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli.main import main
from orchestrator.loading import SpecError, load_spec
from tests.conftest import TINY

# (replace this, with that) in the tiny spec -> words the error must contain
BAD = {
    "unknown evaluation": (
        "  layer:",
        "  evaluation: [linear_probes]\n  layer:",
        ["grid.evaluation[0]", "'linear_probes'", "linear_probe, finetune_frozen, style_transfer"],
    ),
    "k beyond the network": (
        "  layer:",
        "  evaluation: [{name: finetune_frozen, frozen: [2, 6]}]\n  layer:",
        ["grid.evaluation[0].frozen", "[2, 6]", "0 <= k <= 5"],
    ),
    "evaluation listed twice": (
        "  layer:",
        "  evaluation: [style_transfer, linear_probe, style_transfer]\n  layer:",
        ["grid.evaluation", "listed twice"],
    ),
    "unknown style image": (
        "retries: 1",
        "retries: 1\nstyle: {styles: [hubble, starry_night]}",
        ["style", "'starry_night'", "hubble, ihc", "no file at"],
    ),
    "exclude: a coordinate of the wrong type": (
        "retries: 1",
        "retries: 1\nexclude: [{evaluation: finetune_frozen, frozen: [1, true]}]",
        ["exclude[0].frozen[1]", "True", "valid integer"],
    ),
    "exclude: a coordinate no kind declares": (
        "retries: 1",
        "retries: 1\nexclude: [{layr: conv1}]",
        ["exclude[0].layr", "unknown key 'layr' (did you mean 'layer'?)", "seed, layer, frozen, content, style"],
    ),
    "unknown method": (
        "method: [random,",
        "method: [rotnett,",
        ["grid.method[0]", "'rotnett'", "random, rotnet"],
    ),
    "wrong type": (
        "epochs: 1,",
        "epochs: many,",
        ["grid.method[1].epochs", "'many'", "integer"],
    ),
    "negative N": (
        "images: [astronaut]",
        "images: [{photos: [astronaut], n: -1}]",
        ["grid.images[0].n", "-1", "greater than or equal to 1"],
    ),
    "unknown layer": (
        "conv4, conv5]",
        "conv4, conv6]",
        ["grid.layer[4]", "'conv6'", "conv1, conv2, conv3, conv4, conv5"],
    ),
    "missing image file": (
        "images: [astronaut]",
        "images: [photos/missing.jpg]",
        ["grid.images[0]: ", "'photos/missing.jpg'", "astronaut", "no file at"],
    ),
    "unknown key": (
        "retries: 1",
        "retries: 1\nretires: 2",
        ["retires", "unknown key", "did you mean 'retries'"],
    ),
    "unknown nested key": (
        "network: {width: 0.25,",
        "network: {widht: 0.25,",
        ["network.widht", "did you mean 'width'", "allowed: arch, width, input_size"],
    ),
    "unknown augmentation": (
        "[full, none]",
        "[full, nope]",
        ["grid.augmentation", "'nope'", "full, none"],
    ),
    "duplicate axis value": (
        "seed: [0]",
        "seed: [0, 0]",
        ["grid.seed", "listed twice"],
    ),
    "empty axis": (
        "seed: [0]",
        "seed: []",
        ["grid.seed", "at least 1"],
    ),
    "unknown probe dataset": (
        "probe_dataset: [fashion_mnist]",
        "probe_dataset: [mnist]",
        ["grid.probe_dataset[0]", "'mnist'", "fashion_mnist"],
    ),
    # Hostile files: each was accepted or mishandled before strict types and the YAML checks.
    "boolean as integer": (
        "epochs: 1,",
        "epochs: true,",
        ["grid.method[1].epochs", "True", "valid integer"],
    ),
    "string as number": (
        "width: 0.25,",
        "width: '0.25',",
        ["network.width", "'0.25'", "valid number"],
    ),
    "boolean as integer axis value": (
        "seed: [0]",
        "seed: [false]",
        ["grid.seed[0]", "False", "valid integer"],
    ),
    "tracking store MLflow does not serve": (
        "retries: 1",
        "retries: 1\ntracking_uri: ftp://files.example/mlflow",
        ["tracking_uri", "ftp://", "not a store", "sqlite://"],
    ),
    "key repeated in one mapping": (
        "retries: 1",
        "retries: 1\nretries: 2",
        ["retries", "given twice", "lines 11 and 12"],
    ),
    "key repeated in a nested mapping": (
        "probe: {preset: fast,",
        "probe: {preset: fast, epochs: 3,",
        ["probe", "'epochs'", "given twice"],
    ),
}


def test_an_enormous_value_is_elided(write_spec, tmp_path, capsys, monkeypatch):
    path = write_spec(TINY.replace("name: tiny", "name: " + "x" * 3_000_000, 1))
    monkeypatch.chdir(tmp_path)
    assert main(["validate", str(path)]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert len(err) < 300 and "name" in err and "...' (2.9 MB)" in err


def test_yaml_1_2_numbers_are_numbers(write_spec):
    spec = load_spec(write_spec(TINY.replace("test_samples: 500}", "test_samples: 500, lr: 1e-3}")))
    assert spec.probe.lr == 0.001


@pytest.mark.parametrize("case", BAD)
def test_bad_file_gets_one_located_error(case, write_spec, tmp_path, capsys, monkeypatch):
    old, new, words = BAD[case]
    assert old in TINY
    path = write_spec(TINY.replace(old, new, 1))
    monkeypatch.chdir(tmp_path)
    for command in ("validate", "run"):
        assert main([command, str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert err[0].startswith(f"{path}:"), err
        for word in words:
            assert word in err[0], (word, err[0])
    assert not (tmp_path / "mlflow.db").exists()  # nothing recorded
    assert not (tmp_path / ".monosweep").exists()  # Ray never ran a trial


def test_error_names_the_line(write_spec):
    path = write_spec(TINY.replace("conv4, conv5]", "conv4, conv6]"))
    with pytest.raises(SpecError) as e:
        load_spec(path)
    line = next(i for i, text in enumerate(TINY.splitlines(), 1) if "layer:" in text)
    assert e.value.lines[0].startswith(f"{path}:{line}: grid.layer[4]:")


def test_every_error_at_once(write_spec):
    path = write_spec(TINY.replace("conv4, conv5]", "conv4, conv6]").replace("retries: 1", "retries: -1"))
    with pytest.raises(SpecError) as e:
        load_spec(path)
    assert len(e.value.lines) == 2


def test_malformed_yaml(write_spec, capsys):
    path = write_spec("name: x\ngrid: [unclosed\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:" in err and "not valid YAML" in err


def test_missing_file(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_missing_data_root_caught_before_ray(write_spec, tmp_path, capsys, monkeypatch):
    path = write_spec(TINY + "data_roots: {fashion_mnist: no/such/folder}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "data_roots.fashion_mnist" in err and "no/such/folder" in err
    assert not (tmp_path / "mlflow.db").exists()


ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize(
    "shipped", ["experiments.yaml", *sorted(f"examples/{p.name}" for p in (ROOT / "examples").glob("*.yaml"))]
)
def test_shipped_files_are_valid(shipped, capsys):
    assert main(["validate", str(Path(__file__).parents[2] / shipped)]) == 0
    assert "valid" in capsys.readouterr().out


def test_validate_prints_sizes(write_spec, capsys):
    assert main(["validate", str(write_spec(TINY))]) == 0
    assert "15 cells, 3 pretrain jobs, 3 evaluation jobs" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["validate", "run", "status", "resubmit", "report", "submit", "logs", "env"])
def test_help_on_every_subcommand(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "usage: monosweep" in capsys.readouterr().out


def test_credentials_in_the_tracking_uri_are_refused(write_spec, capsys):
    path = write_spec(TINY + "tracking_uri: http://alice:s3cret@127.0.0.1:5000\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "tracking_uri" in err and "MLFLOW_TRACKING_PASSWORD" in err
    assert "s3cret" not in err  # a secret is not echoed back


def test_uris_are_printed_without_credentials():
    from orchestrator.record.store import shown

    assert shown("http://alice:s3cret@host:5000/x") == "http://host:5000/x"
    assert shown("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"



# Broken source images, written by the test: case -> (file name, writer, words the error holds).
def _photo(size: tuple[int, int], mode: str = "RGB", fmt: str = "PNG"):
    def write(path: Path) -> None:
        from PIL import Image

        Image.effect_noise(size, 60).convert(mode).save(path, fmt)

    return write


def _truncated_jpeg(path: Path) -> None:
    _photo((96, 96), fmt="JPEG")(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD_IMAGES = {
    "truncated JPEG": ("cut.jpg", _truncated_jpeg, ["corrupt JPEG file", "truncated"]),
    "garbage bytes": (
        "noise.jpg", lambda p: p.write_bytes(bytes(range(256)) * 8), ["not an image"],
    ),
    "text named .png": (
        "notes.png", lambda p: p.write_text("not a picture\n"),
        ["not an image", "give a JPEG, PNG, WebP or GIF file"],
    ),
    "tiny": ("tiny.png", _photo((16, 16)), ["16x16 px is too small", "at least 32 px"]),
    "grayscale": ("grey.png", _photo((96, 96), "L"), ["grayscale", "mode L", "convert it to RGB"]),
    "smaller than the crop": (
        "small.png", _photo((40, 40)),
        ["40x40 px is smaller than the crop", "network.input_size = 64 px", "upsampled"],
    ),
    "a format the workers cannot decode": (
        "scan.bmp", _photo((96, 96), fmt="BMP"), ["a BMP file", "convert it to JPEG or PNG"],
    ),
}


def _images(text: str) -> str:
    """The tiny spec with its images axis replaced."""
    return TINY.replace("  images: [astronaut]", f"  images: {text}")


@pytest.mark.parametrize("case", BAD_IMAGES)
def test_bad_image_rejected_before_compute(case, write_spec, tmp_path, capsys, monkeypatch):
    import ray

    name, write, words = BAD_IMAGES[case]
    write(tmp_path / name)
    path = write_spec(_images(f"\n    - astronaut\n    - photos: [chelsea, {name}]"))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if name in text)
    monkeypatch.chdir(tmp_path)
    for command in ("validate", "run"):
        assert main([command, str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert err[0].startswith(f"{path}:{line}: grid.images[1].photos[1]: '{name}': "), err
        for word in words:
            assert word in err[0], (word, err[0])
    assert not (tmp_path / "mlflow.db").exists()  # nothing recorded
    assert not ray.is_initialized()


def test_bad_image_drawn_from_a_pool_is_named(write_spec, tmp_path, capsys):
    pool = tmp_path / "pool"
    pool.mkdir()
    _photo((96, 96))(pool / "good.png")
    _photo((96, 96), "L")(pool / "grey.png")
    path = write_spec(_images("[astronaut, {pool: pool, n: 2}]"))
    assert main(["validate", str(path)]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith(f"{path}:4: grid.images[1].pool: 'pool/grey.png': a grayscale"), err


def test_every_bad_image_at_once(write_spec, tmp_path, capsys):
    _photo((16, 16))(tmp_path / "tiny.png")
    _photo((40, 40))(tmp_path / "small.png")
    path = write_spec(_images("[tiny.png, small.png, {photos: [coffee, tiny.png]}]"))
    assert main(["validate", str(path)]) == 2
    fields = [e.split(": ")[1] for e in capsys.readouterr().err.strip().splitlines()]
    assert fields == ["grid.images[0]", "grid.images[1]", "grid.images[2].photos[1]"]


def test_good_images_of_every_decoded_format_pass(write_spec, tmp_path, capsys):
    from PIL import Image

    for fmt in ("JPEG", "PNG", "WEBP", "GIF"):
        _photo((80, 64), "P" if fmt == "GIF" else "RGB", fmt)(tmp_path / f"ok.{fmt.lower()}")
    # A camera's JPEG with a multi-picture header: Pillow calls it MPO, the workers decode it.
    frame = Image.effect_noise((80, 64), 60).convert("RGB")
    frame.save(tmp_path / "camera.jpg", "MPO", save_all=True, append_images=[frame])
    assert Image.open(tmp_path / "camera.jpg").format == "MPO"
    path = write_spec(_images("[{photos: [ok.jpeg, ok.png, ok.webp, ok.gif, camera.jpg]}]"))
    assert main(["validate", str(path)]) == 0
    assert "valid" in capsys.readouterr().out


def test_style_transfer_images_are_checked_too(write_spec, tmp_path, capsys):
    _truncated_jpeg(tmp_path / "cut.jpg")
    _photo((40, 40), "L")(tmp_path / "pencil.png")  # grey and small: a fine style image
    spec = TINY.replace("  layer:", "  evaluation: [style_transfer]\n  layer:")
    path = write_spec(spec + "style: {contents: [astronaut], styles: [hubble, pencil.png, cut.jpg]}\n")
    assert main(["validate", str(path)]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith(f"{path}:{len(spec.splitlines()) + 1}: style.styles[2]: 'cut.jpg': corrupt JPEG file"), err
    path.write_text(spec + "style: {contents: [astronaut], styles: [hubble, pencil.png]}\n")
    assert main(["validate", str(path)]) == 0
