"""Key material: a settings field added later keeps every recorded key while it holds its
neutral value, and changes the key when it does not."""

from __future__ import annotations

from typing import Annotated, Literal

from contract.base import KeyNeutral
from contract.methods import RotNetConfig
from orchestrator.keys import content_key, settings_material


class RotNetWithKnob(RotNetConfig):
    """RotNet as if a later version had added a setting (`head_dropout`, 0 before it existed)."""

    name: Literal["rotnet"] = "rotnet"
    head_dropout: Annotated[float, KeyNeutral(0.0)] = 0.0


def key(settings) -> str:
    return content_key("pretrain", {"method": settings_material(settings)})


def test_a_field_added_with_its_neutral_value_keeps_the_key():
    assert key(RotNetWithKnob(epochs=3)) == key(RotNetConfig(epochs=3))


def test_the_added_field_enters_the_key_when_set():
    assert key(RotNetWithKnob(epochs=3, head_dropout=0.5)) != key(RotNetConfig(epochs=3))


def test_an_unmarked_new_field_would_change_the_key():
    """Why the marker exists (and the golden-key test catches a field added without it)."""

    class Unmarked(RotNetConfig):
        name: Literal["rotnet"] = "rotnet"
        head_dropout: float = 0.0

    assert key(Unmarked(epochs=3)) != key(RotNetConfig(epochs=3))


def test_a_preset_name_is_not_key_material():
    from contract.augmentation import AugmentConfig

    assert settings_material(AugmentConfig(preset="full")) == settings_material(AugmentConfig(preset="official_script"))
