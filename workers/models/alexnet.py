"""The paper's AlexNet: the DeepCluster-style network with BatchNorm (DESIGN.md).

96-256-384-384-256 filters; conv1 11x11/4 pad 2, conv2 5x5 pad 2, conv3-5 3x3 pad 1; 3x3/2
max-pools after conv1, conv2 and conv5. torchvision's AlexNet (64-192-384-256-256, no BN) is
a different network. `width` scales every layer's filters; taps are the ReLU outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from workers.config import LAYERS, NetworkConfig

CHANNELS = (96, 256, 384, 384, 256)
# (kernel, stride, padding) of conv1..conv5, and whether a 3x3/2 max-pool follows.
GEOMETRY = ((11, 4, 2, True), (5, 1, 2, True), (3, 1, 1, False), (3, 1, 1, False), (3, 1, 1, True))


class AlexNetBN(nn.Module):
    """Trunk only: `forward` gives pool5 (B, C5, h, w); `taps` gives conv ReLU outputs."""

    def __init__(self, width: float = 1.0, in_channels: int = 3):
        super().__init__()
        self.channels = tuple(max(8, round(c * width)) for c in CHANNELS)
        blocks = []
        c_in = in_channels
        for c_out, (k, s, p, pool) in zip(self.channels, GEOMETRY):
            blocks.append(
                nn.ModuleDict(
                    {
                        "conv": nn.Conv2d(c_in, c_out, k, s, p),
                        "bn": nn.BatchNorm2d(c_out),
                        "pool": nn.MaxPool2d(3, 2) if pool else nn.Identity(),
                    }
                )
            )
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def taps(self, x: torch.Tensor, layers: tuple[str, ...] = LAYERS) -> dict[str, torch.Tensor]:
        """ReLU outputs of the requested conv layers; stops after the deepest one."""
        if not layers:
            raise ValueError("taps() needs at least one layer")
        out: dict[str, torch.Tensor] = {}
        last = max(LAYERS.index(name) for name in layers)
        for i, block in enumerate(self.blocks[: last + 1]):
            x = torch.relu(block["bn"](block["conv"](x)))
            if LAYERS[i] in layers:
                out[LAYERS[i]] = x  # (B, C_i, H_i, W_i)
            x = block["pool"](x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block["pool"](torch.relu(block["bn"](block["conv"](x))))
        return x  # (B, C5, h, w)


def build_trunk(network: NetworkConfig) -> AlexNetBN:
    return AlexNetBN(width=network.width)


def pool5_shape(trunk: AlexNetBN, input_size: int) -> tuple[int, int, int]:
    """(C, h, w) of pool5 for a square input, found by a dry run."""
    with torch.no_grad():
        was_training = trunk.training
        trunk.eval()
        x = torch.zeros(1, 3, input_size, input_size, device=next(trunk.parameters()).device)
        shape = trunk(x).shape[1:]
        trunk.train(was_training)
    return tuple(shape)  # type: ignore[return-value]
