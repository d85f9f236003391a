"""The base of every settings model, and named presets of defaults."""

from __future__ import annotations

import types
import typing
import warnings
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class Frozen(BaseModel):
    """Immutable and strict: unknown keys are errors, never silently dropped, and nothing is
    converted: a boolean is no integer, a string no number (`epochs: "5"` and `epochs: true`
    are errors, not 5 and 1). An integer is still a float, and a list a tuple (YAML and JSON
    have no tuples)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _lists_as_tuples(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        return {k: tuple(v) if isinstance(v, list) and k in fields and _is_tuple(fields[k].annotation) else v
                for k, v in data.items()}


def _is_tuple(annotation: Any) -> bool:
    """A tuple type, or a union with one (`tuple[float, float] | None`)."""
    origin = typing.get_origin(annotation)
    if origin is tuple:
        return True
    return origin in (typing.Union, types.UnionType) and any(_is_tuple(a) for a in typing.get_args(annotation))


def apply_preset(data: Any, presets: dict[str, dict[str, Any]], default: str) -> Any:
    """Merge a named preset's defaults under the given fields (a bare string names a preset)."""
    if isinstance(data, str):
        data = {"preset": data}
    if not isinstance(data, dict):
        return data
    name = data.get("preset", default)
    if name not in presets:
        allowed = ", ".join(presets)
        raise ValueError(f"unknown preset {name!r}; allowed: {allowed}")
    return {**presets[name], **data, "preset": name}


def deprecated_name(data: Any, old: str, new: str, where: str) -> Any:
    """`data` (a mapping being validated) with its key `old` renamed `new`, and a warning that
    says so; a mapping that gives both is left as it is, for the model to refuse."""
    if not isinstance(data, dict) or old not in data or new in data:
        return data
    warnings.warn(f"{where}.{old} is deprecated: call it {where}.{new}", FutureWarning, stacklevel=2)
    return {(new if k == old else k): v for k, v in data.items()}


@dataclass(frozen=True)
class KeyNeutral:
    """Marks a settings field added after content keys were computed with its model:
    `knob: Annotated[float, KeyNeutral(0.0)] = 0.0`. While the field holds `value` it is left
    out of every key, so adding it keeps every key already recorded (and the finished results
    they name); any other value enters the key. `value` is the behaviour before the field
    existed, pinned here and not read from the default, so a later change of the default
    changes the keys it should."""

    value: Any
