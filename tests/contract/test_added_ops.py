"""An augmentation op added from a package of its own, on the driver's side: its settings in the
experiment file's augmentation item, their keys and labels, their errors, and no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import ClassVar, Literal

import pytest

from contract.augmentation import AugmentConfig, OpRegistry, OpSettings
from orchestrator.cli.main import main
from orchestrator.grid import expand
from orchestrator.loading import load_spec
from tests.conftest import TINY
from tests.toy_op import PLUGIN, import_toy_op

import_toy_op()  # registers toy_invert

ROOT = Path(__file__).resolve().parents[2]


def with_augmentation(items: str) -> str:
    return TINY.replace("augmentation: [full, none]", f"augmentation: {items}")


def cell_keys(write_spec, text: str) -> dict[str, str]:
    path = write_spec(text)
    return {c.label: c.key for c in expand(load_spec(path), path.parent).cells}


def test_an_added_op_is_in_its_augmentations_key_and_label(write_spec):
    plain = cell_keys(write_spec, TINY)
    added = cell_keys(write_spec, with_augmentation("[full, {preset: none, ops: [{name: toy_invert, p: 0.25}]}]"))
    label = "rotnet N1 astronaut none+toy_invert(p=0.25) s0 conv1 fashion_mnist"
    assert label in added and added[label] != plain["rotnet N1 astronaut none s0 conv1 fashion_mnist"]
    default = cell_keys(write_spec, with_augmentation("[full, {preset: none, ops: [{name: toy_invert}]}]"))
    assert "rotnet N1 astronaut none+toy_invert s0 conv1 fashion_mnist" in default  # its defaults: no settings shown
    assert set(default.values()).isdisjoint({added[label]})


def test_an_op_switched_off_keeps_every_key(write_spec):
    """p = 0 draws nothing and changes no pixel: the augmentation drops it, so its key (and its
    label) are the ones without it, as are all keys of files that never name an op."""
    plain = cell_keys(write_spec, TINY)
    off = cell_keys(write_spec, with_augmentation("[full, {preset: none, ops: [{name: toy_invert, p: 0}]}]"))
    assert off == plain
    assert AugmentConfig(preset="none", ops=[{"name": "toy_invert", "p": 0.0}]).ops == ()


BAD = {
    "unknown op": ("[{name: toy_invrt}]", ["grid.augmentation[1].ops[0]", "'toy_invrt'", "toy_invert"]),
    "bad setting": ("[{name: toy_invert, p: 2}]", ["grid.augmentation[1].ops[0].p", "2", "less than or equal to 1"]),
    "unknown setting": ("[{name: toy_invert, q: 1}]", ["ops[0].q", "unknown key 'q'", "allowed: name, p"]),
    "op given twice": ("[{name: toy_invert}, {name: toy_invert, p: 1}]",
                       ["grid.augmentation[1].ops", "toy_invert given twice"]),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_op_settings_get_one_located_error(case, write_spec, tmp_path, capsys, monkeypatch):
    ops, words = BAD[case]
    path = write_spec(with_augmentation(f"[full, {{preset: none, ops: {ops}}}]"))
    monkeypatch.chdir(tmp_path)
    assert main(["validate", str(path)]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith(f"{path}:5: ")  # the augmentation line
    for word in words:
        assert word in err, (word, err)


def test_an_op_needs_a_stream_of_its_own():
    """Stream ids below 100 are the shipped ops' and the loader's; two ops sharing one would
    draw the same numbers."""

    class A(OpSettings):
        name: Literal["a"] = "a"
        stream: ClassVar[int] = 100

    class B(OpSettings):
        name: Literal["b"] = "b"
        stream: ClassVar[int] = 5

    class C(OpSettings):
        name: Literal["c"] = "c"
        stream: ClassVar[int] = 100

    registry = OpRegistry("augmentation op", OpSettings)  # not the global one
    registry.add(A)
    with pytest.raises(ValueError, match="'b': stream 5 is reserved"):
        registry.add(B)
    with pytest.raises(ValueError, match="'c': stream 100 is already 'a'"):
        registry.add(C)
    assert registry.names() == ("a",)


def test_the_driver_validates_an_op_without_torch(write_spec):
    """The op's settings module is torch-free: validating a file that uses it loads no torch."""
    path = write_spec(with_augmentation("[full, {preset: none, ops: [{name: toy_invert, p: 0.5}]}]"))
    code = (f"import sys; sys.path.insert(0, {str(PLUGIN)!r}); import monosweep_toys.toy_op; "
            f"from orchestrator.loading import load_spec; load_spec({str(path)!r}); "
            "assert 'torch' not in sys.modules, 'torch loaded'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
