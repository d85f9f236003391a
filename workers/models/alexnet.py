"""AlexNet trunks with conv1..conv5 taps.

`alexnet_bn`, the paper's network: the DeepCluster-style AlexNet with BatchNorm
(docs/FIDELITY.md), 96-256-384-384-256 filters, the one trunk and init of every method (a
declared deviation for RotNet, whose repository has a smaller AlexNet with PyTorch's init).
`alexnet`: torchvision's shape (Krizhevsky et al. 2012 as torchvision builds it),
64-192-384-256-256 filters and no BatchNorm. Both: conv1 11x11/4 pad 2, conv2 5x5 pad 2, conv3-5
3x3 pad 1, 3x3/2 max-pools after conv1, conv2 and conv5.
`width` scales every layer's filters; taps are the ReLU outputs. `sobel` puts DeepCluster's
fixed filter first (Caron et al., ECCV 2018): RGB -> grey -> horizontal and vertical gradients,
so conv1 sees 2 channels; the trunk still takes RGB.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from contract.datasets import LAYERS
from contract.network import NetworkConfig

CHANNELS = {"alexnet_bn": (96, 256, 384, 384, 256), "alexnet": (64, 192, 384, 256, 256)}
# (kernel, stride, padding) of conv1..conv5, and whether a 3x3/2 max-pool follows.
GEOMETRY = ((11, 4, 2, True), (5, 1, 2, True), (3, 1, 1, False), (3, 1, 1, False), (3, 1, 1, True))


def sobel_filter() -> nn.Sequential:
    """A fixed (B, 3, H, W) -> (B, 2, H, W) layer: mean of RGB, then the 3x3 Sobel x and y
    kernels, as DeepCluster's `sobel` module (weights frozen, saved with the trunk)."""
    grey = nn.Conv2d(3, 1, 1)
    grey.weight.data.fill_(1 / 3)
    grey.bias.data.zero_()
    gradients = nn.Conv2d(1, 2, 3, padding=1)
    dx = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
    gradients.weight.data.copy_(torch.stack([dx, dx.t()]).unsqueeze(1))  # (2, 1, 3, 3)
    gradients.bias.data.zero_()
    layer = nn.Sequential(grey, gradients)
    for p in layer.parameters():
        p.requires_grad_(False)
    return layer


class AlexNet(nn.Module):
    """Trunk only: `forward` gives pool5 (B, C5, h, w); `taps` gives conv ReLU outputs."""

    def __init__(self, width: float = 1.0, arch: str = "alexnet_bn", sobel: bool = False):
        super().__init__()
        self.channels = tuple(max(8, round(c * width)) for c in CHANNELS[arch])
        self.sobel = sobel_filter() if sobel else nn.Identity()
        c_in = 2 if sobel else 3
        blocks = []
        for c_out, (k, s, p, pool) in zip(self.channels, GEOMETRY, strict=True):
            blocks.append(
                nn.ModuleDict(
                    {
                        "conv": nn.Conv2d(c_in, c_out, k, s, p),
                        "bn": nn.BatchNorm2d(c_out) if arch == "alexnet_bn" else nn.Identity(),
                        "pool": nn.MaxPool2d(3, 2) if pool else nn.Identity(),
                    }
                )
            )
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        for block in self.blocks:
            nn.init.kaiming_normal_(block["conv"].weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(block["conv"].bias)

    def taps(self, x: torch.Tensor, layers: tuple[str, ...] = LAYERS) -> dict[str, torch.Tensor]:
        """ReLU outputs of the requested conv layers; stops after the deepest one."""
        if not layers:
            raise ValueError("taps() needs at least one layer")
        out: dict[str, torch.Tensor] = {}
        last = max(LAYERS.index(name) for name in layers)
        x = self.sobel(x)
        for i, block in enumerate(self.blocks[: last + 1]):
            x = torch.relu(block["bn"](block["conv"](x)))
            if LAYERS[i] in layers:
                out[LAYERS[i]] = x  # (B, C_i, H_i, W_i)
            x = block["pool"](x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.sobel(x)
        for block in self.blocks:
            x = block["pool"](torch.relu(block["bn"](block["conv"](x))))
        return x  # (B, C5, h, w)


def build_trunk(network: NetworkConfig) -> AlexNet:
    return AlexNet(width=network.width, arch=network.arch, sobel=network.sobel)


def pool5_shape(trunk: AlexNet, input_size: int) -> tuple[int, int, int]:
    """(C, h, w) of pool5 for a square input, found by a dry run."""
    with torch.no_grad():
        was_training = trunk.training
        trunk.eval()
        x = torch.zeros(1, 3, input_size, input_size, device=next(trunk.parameters()).device)
        shape = trunk(x).shape[1:]
        trunk.train(was_training)
    return tuple(shape)  # type: ignore[return-value]


def load_trunk(network: NetworkConfig, checkpoint: Path) -> AlexNet:
    """The trunk of a pre-training checkpoint (strict: exactly the trunk's keys), on the CPU."""
    trunk = build_trunk(network)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    trunk.load_state_dict(state["trunk"])
    return trunk
