"""The extension tables: a registered class is accepted by name wherever the field is used,
an unknown name is an error listing the known ones, and a nested error keeps its place."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import ValidationError

from contract.base import Frozen
from contract.registry import Registry, registry_of


class Settings(Frozen):
    name: str


TABLE: Registry[Settings] = Registry("widget", Settings)


@TABLE.add
class Small(Settings):
    name: Literal["small"] = "small"
    size: int = 1


class Holder(Frozen):
    items: list[TABLE.field]  # type: ignore[valid-type]


def test_items_are_validated_by_their_registered_class():
    holder = Holder.model_validate({"items": [{"name": "small", "size": 3}]})
    assert holder.items == [Small(size=3)]
    assert holder.model_dump()["items"] == [{"name": "small", "size": 3}]  # the subclass's fields


def test_a_class_added_later_is_accepted_by_models_built_before():
    @TABLE.add
    class Large(Settings):
        name: Literal["large"] = "large"
        weight: float = 2.0

    assert Holder.model_validate({"items": [{"name": "large"}]}).items == [Large()]


def test_an_unknown_name_lists_the_registered_ones():
    with pytest.raises(ValidationError) as caught:
        Holder.model_validate({"items": [{"name": "smal"}]})
    (error,) = caught.value.errors()
    assert error["type"] == "union_tag_invalid" and error["loc"] == ("items", 0)
    assert error["ctx"]["tag"] == "smal" and "'small'" in error["ctx"]["expected_tags"]


def test_a_nested_error_keeps_its_place_with_the_name_as_tag():
    with pytest.raises(ValidationError) as caught:
        Holder.model_validate({"items": [{"name": "small", "size": "many", "colour": "red"}]})
    places = {e["loc"]: e["type"] for e in caught.value.errors()}
    assert places == {("items", 0, "small", "size"): "int_type", ("items", 0, "small", "colour"): "extra_forbidden"}


def test_a_name_is_registered_once():
    class Impostor(Settings):
        name: Literal["small"] = "small"

    with pytest.raises(ValueError, match="registered twice"):
        TABLE.add(Impostor)


def test_the_field_names_its_registry():
    assert registry_of(Holder.model_fields["items"].annotation.__args__[0]) is TABLE
