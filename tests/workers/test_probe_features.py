"""Equal feature counts per layer (ProbeConfig.features, workers.probes.equal_grid) and the raw-pixel
control (workers/models/pixels.py): tiny real trunks, real pooling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from contract.datasets import LAYERS
from contract.evaluations import ProbeConfig
from contract.network import NetworkConfig
from workers.compute import EAGER
from workers.data.probe_sets import ProbeSplit
from workers.models.alexnet import AlexNet, build_trunk
from workers.models.pixels import Pixels
from workers.probes import LinearProbes, ProbeTrainer, equal_grid, extract, feature_shapes, pool_taps, pool_target

CPU = EAGER  # fp32 eager on the CPU


@torch.no_grad()
def test_every_layer_reaches_the_cpu_count_exactly_at_64_px():
    """At 64 px, width 0.5, the grid rule gives 432 / 512 / 192 / 192 / 128 features; pooled to
    1152 (conv5's whole 128 x 3 x 3 map, the most every layer can reach) each layer has 1152,
    with a rectangular grid where no square one fits (conv1 4 x 6, conv3-conv4 2 x 3). Mutation
    tried: square grids only (h = w) fails it (conv1 1200, conv3 768)."""
    trunk = AlexNet(width=0.5).eval()
    assert {k: math.prod(s) for k, s in feature_shapes(trunk, 64, LAYERS).items()} == dict(
        zip(LAYERS, (432, 512, 192, 192, 128), strict=True)
    )
    assert feature_shapes(trunk, 64, LAYERS, 1152) == {
        "conv1": (48, 4, 6), "conv2": (128, 3, 3), "conv3": (192, 2, 3), "conv4": (192, 2, 3), "conv5": (128, 3, 3),
    }


def test_the_grid_is_the_closest_count_the_map_allows():
    """Brute force over every grid of small maps: no grid inside the map is closer to N, and a
    map too small for N is read whole. Mutation tried: `range(1, height)` (the whole map never
    offered) fails it."""
    for channels, height, width, features in [(5, 3, 4, 37), (7, 6, 6, 100), (3, 2, 2, 1000), (4, 9, 5, 1)]:
        h, w = equal_grid(channels, height, width, features)
        assert 1 <= h <= height and 1 <= w <= width
        best = min(abs(channels * a * b - features) for a in range(1, height + 1) for b in range(1, width + 1))
        assert abs(channels * h * w - features) == best
    assert equal_grid(3, 2, 2, 1000) == (2, 2)
    assert equal_grid(48, 15, 15, 1152) == (4, 6)  # 4 x 6 and 6 x 4 tie: the fewer rows


@torch.no_grad()
@pytest.mark.parametrize("size, features", [(64, 1152), (96, 3200)])
def test_every_position_reaches_a_feature_at_equal_counts(size: int, features: int):
    maps = AlexNet(width=0.5).eval().taps(torch.zeros(1, 3, size, size))
    for layer, tap in maps.items():
        h, w = tap.shape[2:]
        one_hot = torch.eye(h * w).view(h * w, 1, h, w)  # sample k: position k set
        pooled = pool_taps({layer: one_hot}, features)[layer]
        assert (pooled.amax(1) > 0).all(), f"{layer} at {size} px leaves a position unread"


NETWORK = NetworkConfig(width=0.5, input_size=64)


@torch.no_grad()
@pytest.mark.parametrize("features", [None, 1152])
def test_pixels_read_as_many_features_as_each_layer(features: int | None):
    """The raw-pixel control's layer L reads the normalised input, adaptive-max-pooled to the
    count of the network's L under the same protocol: under the grid rule 432 / 512 / 192 / 192
    / 128 at 64 px, width 0.5. Mutation tried: `pool_target` giving the pixels the protocol's
    own target (the grid rule applied to the 64 x 64 input) fails the grid-rule case."""
    pixels = NETWORK.model_copy(update={"pixels": True})
    trunk = build_trunk(pixels)
    assert isinstance(trunk, Pixels) and not list(trunk.parameters())
    reference = feature_shapes(build_trunk(NETWORK), 64, LAYERS, features)
    shapes = feature_shapes(trunk, 64, LAYERS, pool_target(pixels, LAYERS, features))
    for layer in LAYERS:
        assert shapes[layer][0] == 3
        assert math.prod(shapes[layer]) == pytest.approx(math.prod(reference[layer]), rel=0.05), layer
    # conv1's own count is reached exactly by 3 x 12 x 12 (grid rule) and 3 x 16 x 24 (1152)
    assert shapes["conv1"] == ((3, 12, 12) if features is None else (3, 16, 24))
    x = torch.randn(2, 3, 64, 64)
    got = pool_taps(trunk.taps(x, ("conv1",)), pool_target(pixels, ("conv1",), features))["conv1"]
    torch.testing.assert_close(got, F.adaptive_max_pool2d(x, shapes["conv1"][1:]).flatten(1), rtol=0, atol=0)


def test_a_probe_on_pixels_learns_from_the_pixels():
    """The control runs the probes' own code end to end on images whose class is their
    brightness: top-1 far above chance from the pixels alone, with no network."""
    torch.manual_seed(0)
    labels = torch.arange(40) % 2
    images = (labels.view(-1, 1, 1, 1) * 120 + torch.randint(0, 100, (40, 1, 28, 28))).to(torch.uint8)
    split = ProbeSplit(images, labels, 2)
    pixels = NETWORK.model_copy(update={"pixels": True})
    trunk, config = build_trunk(pixels), ProbeConfig(preset="fast", batch_size=8, features=1152)
    target = pool_target(pixels, ("conv1",), config.features)
    probes = LinearProbes(feature_shapes(trunk, 64, ("conv1",), target), 2)
    trainer = ProbeTrainer(trunk, probes, config, 64, 0, CPU, target)
    cache = extract(trunk, split, 64, ("conv1",), 16, CPU, target=target)
    for epoch in range(3):
        trainer.train_epoch(epoch, split, cache)
    assert trainer.evaluate(split, cache)["conv1"]["top1"] >= 90
