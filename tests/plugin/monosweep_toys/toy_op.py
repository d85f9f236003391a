"""A toy augmentation op's torch-free side: its settings, registered in the table of added ops
(the driver validates an experiment file with them, without torch). Its draw and renders are
in toy_op_render.py, which the worker imports."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from contract.augmentation import AUGMENTATION_OPS, OpSettings


@AUGMENTATION_OPS.add
class InvertConfig(OpSettings):
    """Invert a sample's colours (x -> 255 - x) with probability p."""

    name: Literal["toy_invert"] = "toy_invert"
    stream: ClassVar[int] = 101
    implementation: ClassVar[str] = "monosweep_toys.toy_op_render"
    p: float = Field(0.5, ge=0, le=1, description="probability of inverting a sample")

    def on(self) -> bool:
        return self.p > 0
