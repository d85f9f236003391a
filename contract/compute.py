"""How the workers compute: the precision of the trunk's and heads' arithmetic, the memory format
of their weights and activations, and whether the trunk is compiled (workers/compute.py applies
it, in every loop that runs a trunk).

Ours, not upstream's: upstream trains and evaluates in float32, eager (docs/FIDELITY.md). The
defaults are that; the faster settings are for GPUs, where bf16 autocast with channels_last is
what the tensor cores want. Each field is key-neutral at the old behaviour, so a file without
`compute` keeps every key it had; any other value is part of the trunk's key (and so of every
cell's), as it changes the numbers a little.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import model_validator

from contract.base import Frozen, KeyNeutral


class ComputeConfig(Frozen):
    """`precision`: fp32 (float32 throughout), or bf16 (autocast: convolutions and matmuls in
    bfloat16, reductions, norms and losses in float32, parameters and optimizer state float32).
    `channels_last`: weights and activations in NHWC order (on by default with bf16, the layout
    tensor-core convolutions read). `compile`: torch.compile of the trunk's forward passes."""

    precision: Annotated[Literal["fp32", "bf16"], KeyNeutral("fp32")] = "fp32"
    channels_last: Annotated[bool, KeyNeutral(False)] = False
    compile: Annotated[bool, KeyNeutral(False)] = False

    @model_validator(mode="before")
    @classmethod
    def _channels_last_with_bf16(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("precision") == "bf16" and "channels_last" not in data:
            return {**data, "channels_last": True}
        return data

    @property
    def label(self) -> str:
        """`fp32`, `bf16 + channels_last`, `bf16 + channels_last + compile`: how bench.gpu's
        table and the estimate's measured MFU name a setting."""
        return " + ".join([self.precision, *(["channels_last"] if self.channels_last else []),
                           *(["compile"] if self.compile else [])])
