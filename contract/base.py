"""The base of every settings model, and named presets of defaults."""

from __future__ import annotations

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
