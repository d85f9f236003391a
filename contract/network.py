"""The trunk's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from contract.base import Frozen


class NetworkConfig(Frozen):
    """The trunk. `alexnet_bn` is the paper's AlexNet (DeepCluster's, with BatchNorm:
    96-256-384-384-256), `alexnet` torchvision's shape (64-192-384-256-256, no BatchNorm); width
    and input size shrink it for CPU runs (width 1.0 at 224 px is the paper's network). `sobel`
    puts DeepCluster's fixed Sobel filter first (a method such as deepcluster switches it on for
    its own jobs)."""

    arch: Literal["alexnet_bn", "alexnet"] = "alexnet_bn"
    width: float = Field(1.0, gt=0, le=4)
    # 64 px is the smallest input whose pool5 is not empty (conv5 at 3x3, pool5 at 1x1).
    input_size: int = Field(224, ge=64, le=512)
    sobel: bool = False
