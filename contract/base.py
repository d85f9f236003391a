"""The base of every settings model, and named presets of defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Immutable, strict: unknown keys are errors, never silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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


@dataclass(frozen=True)
class KeyNeutral:
    """Marks a settings field added after content keys were computed with its model:
    `knob: Annotated[float, KeyNeutral(0.0)] = 0.0`. While the field holds `value` it is left
    out of every key, so adding it keeps every key already recorded (and the finished results
    they name); any other value enters the key. `value` is the behaviour before the field
    existed, pinned here and not read from the default, so a later change of the default
    changes the keys it should."""

    value: Any
