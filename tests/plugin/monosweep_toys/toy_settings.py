"""A toy SSL method's settings: the first of its two files (torch-free: the driver validates
files with it). pyproject.toml names this module under `monosweep.methods`."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from contract.methods import METHODS, MethodSettings
from contract.schedules import Schedule


@METHODS.add  # registered when the module is imported
class BrightnessConfig(MethodSettings):
    """Predict each mono sample's mean brightness from pool5."""

    name: Literal["toy_brightness"] = "toy_brightness"
    implementation: ClassVar[tuple[str, str]] = ("monosweep_toys.toy_method", "Brightness")
    samples: int = Field(64, ge=1)
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(16, ge=2)
    lr: float = Field(0.01, gt=0)
    schedule: Schedule = Schedule(kind="cosine")
    momentum: float = 0.9
    weight_decay: float = 0.0
    nesterov: bool = False
