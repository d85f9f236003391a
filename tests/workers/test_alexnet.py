"""workers.models.alexnet: the paper's AlexNet-BN trunk and its conv taps."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from contract.datasets import LAYERS
from contract.network import NetworkConfig
from workers.models.alexnet import AlexNet, build_trunk, pool5_shape
from workers.probes import feature_shapes

# The smallest input NetworkConfig accepts; the trunk must work at every size it accepts.
MIN_INPUT = next(
    m.ge for m in NetworkConfig.model_fields["input_size"].metadata if hasattr(m, "ge")
)

# A pool5 needs a 3x3 conv5 map: conv5 3 <- pool2 out 3 <- conv2 7 <- pool1 out 7 <- conv1 15
# <- input 63 (conv1 11/4 pad 2); 32 px gives conv5 at 1x1 and an empty pool5.
TOO_SMALL = 32


def conv(trunk: AlexNet, i: int) -> nn.Conv2d:
    return trunk.blocks[i]["conv"]


def test_paper_channels_and_geometry_at_width_one():
    trunk = AlexNet(width=1.0)
    assert trunk.channels == (96, 256, 384, 384, 256)
    assert [conv(trunk, i).out_channels for i in range(5)] == [96, 256, 384, 384, 256]
    assert [conv(trunk, i).in_channels for i in range(5)] == [3, 96, 256, 384, 384]
    # facebookresearch/deepcluster models/alexnet.py: conv1 11x11/4 pad 2; conv2 5x5 pad 2; conv3-5 3x3 pad 1.
    geometry = [
        (conv(trunk, i).kernel_size, conv(trunk, i).stride, conv(trunk, i).padding)
        for i in range(5)
    ]
    assert geometry == [
        ((11, 11), (4, 4), (2, 2)),
        ((5, 5), (1, 1), (2, 2)),
        ((3, 3), (1, 1), (1, 1)),
        ((3, 3), (1, 1), (1, 1)),
        ((3, 3), (1, 1), (1, 1)),
    ]
    # 3x3/2 max-pools after conv1, conv2 and conv5 only; BatchNorm after every conv.
    pools = [trunk.blocks[i]["pool"] for i in range(5)]
    assert [isinstance(p, nn.MaxPool2d) for p in pools] == [True, True, False, False, True]
    assert all(p.kernel_size == 3 and p.stride == 2 for p in pools if isinstance(p, nn.MaxPool2d))
    assert all(isinstance(trunk.blocks[i]["bn"], nn.BatchNorm2d) for i in range(5))


@pytest.mark.parametrize("width", [0.25, 0.5, 2.0])
def test_width_multiplier_scales_channels(width: float):
    trunk = AlexNet(width=width)
    expected = tuple(max(8, round(c * width)) for c in (96, 256, 384, 384, 256))
    assert trunk.channels == expected
    assert tuple(conv(trunk, i).out_channels for i in range(5)) == expected
    assert build_trunk(NetworkConfig(width=width, input_size=64)).channels == expected


@torch.no_grad()
def test_tap_shapes_at_224():
    taps = AlexNet(width=1.0).eval().taps(torch.zeros(1, 3, 224, 224))
    assert {k: tuple(v.shape) for k, v in taps.items()} == {
        "conv1": (1, 96, 55, 55),
        "conv2": (1, 256, 27, 27),
        "conv3": (1, 384, 13, 13),
        "conv4": (1, 384, 13, 13),
        "conv5": (1, 256, 13, 13),
    }


@pytest.mark.parametrize(
    "layers", [("conv1",), ("conv2",), ("conv1", "conv4"), ("conv3", "conv5"), ("conv5",), LAYERS]
)
def test_taps_returns_only_requested_layers(layers: tuple[str, ...]):
    trunk = AlexNet(width=0.25).eval()
    with torch.no_grad():
        taps = trunk.taps(torch.randn(2, 3, 64, 64), layers)
    assert set(taps) == set(layers)
    for layer, x in taps.items():
        assert x.shape[:2] == (2, trunk.channels[LAYERS.index(layer)])
        assert (x >= 0).all()  # ReLU outputs


@pytest.mark.parametrize("deepest", LAYERS)
def test_taps_stops_after_deepest_requested_layer(deepest: str):
    trunk = AlexNet(width=0.25).eval()
    ran: list[int] = []
    for i in range(5):
        conv(trunk, i).register_forward_hook(lambda module, args, out, i=i: ran.append(i))
    with torch.no_grad():
        trunk.taps(torch.randn(2, 3, 64, 64), ("conv1", deepest))
    assert ran == list(range(LAYERS.index(deepest) + 1))


@torch.no_grad()
def test_taps_agree_with_forward():
    # forward() is pool5 of the conv5 tap; eval mode, so BN uses running statistics.
    trunk = AlexNet(width=0.25).eval()
    x = torch.randn(2, 3, 96, 96)
    conv5 = trunk.taps(x)["conv5"]
    torch.testing.assert_close(trunk(x), nn.functional.max_pool2d(conv5, 3, 2), rtol=0, atol=0)


@pytest.mark.parametrize("size", [MIN_INPUT, 96, 128])
def test_forward_at_small_inputs(size: int):
    trunk = AlexNet(width=0.25)
    out = trunk(torch.randn(2, 3, size, size))  # train mode: batch statistics, batch 2
    assert out.shape[:2] == (2, trunk.channels[-1])
    assert out.shape[2] >= 1 and out.shape[2] == out.shape[3]
    assert pool5_shape(trunk, size) == tuple(out.shape[1:])
    assert trunk.training  # pool5_shape restores the mode it found


def test_feature_sizes_shrink_with_input_size():
    trunk = AlexNet(width=0.25)
    dims = {
        size: {layer: math.prod(s) for layer, s in feature_shapes(trunk, size, LAYERS).items()}
        for size in (MIN_INPUT, 96, 224)
    }
    for layer in LAYERS:
        # Grids scale with the map, rounded: conv2's is 2x2 at both 64 and 96 px.
        assert 0 < dims[MIN_INPUT][layer] <= dims[96][layer] < dims[224][layer], layer
    assert trunk.training  # feature_shapes restores the mode it found


def test_every_accepted_input_size_gives_pool5_and_all_probe_layers():
    # The smallest size the schema accepts must run the whole trunk and every probe layer.
    network = NetworkConfig(width=0.25, input_size=MIN_INPUT)
    trunk = build_trunk(network)
    assert pool5_shape(trunk, network.input_size)[1] >= 1
    assert set(feature_shapes(trunk, network.input_size, LAYERS)) == set(LAYERS)


def test_input_size_too_small_for_the_trunk_is_rejected():
    # At 32 px pool5 of the trunk is empty, so the schema must refuse it before a job starts.
    with pytest.raises(RuntimeError):
        AlexNet(width=0.25)(torch.randn(2, 3, TOO_SMALL, TOO_SMALL))
    with pytest.raises(ValidationError):
        NetworkConfig(width=0.25, input_size=TOO_SMALL)


def test_torchvision_shaped_variant_matches_torchvision_alexnet_features():
    from torchvision.models import alexnet

    ours = build_trunk(NetworkConfig(arch="alexnet", input_size=224))
    assert ours.channels == (64, 192, 384, 256, 256)
    reference = [m for m in alexnet(weights=None).features if isinstance(m, nn.Conv2d)]
    for i, ref in enumerate(reference):
        mine = conv(ours, i)
        assert (mine.weight.shape, mine.stride, mine.padding) == (ref.weight.shape, ref.stride, ref.padding)
    assert all(isinstance(ours.blocks[i]["bn"], nn.Identity) for i in range(5))  # no BatchNorm
    with torch.no_grad():
        x = torch.randn(1, 3, 224, 224)
        # torchvision's features end with pool5: (1, 256, 6, 6), as ours.
        assert ours(x).shape == alexnet(weights=None).features(x).shape == (1, 256, 6, 6)


def test_sobel_layer_gives_grey_gradients_and_is_frozen():
    trunk = AlexNet(width=0.25, sobel=True)
    assert conv(trunk, 0).in_channels == 2
    assert not any(p.requires_grad for p in trunk.sobel.parameters())
    assert any(k.startswith("sobel.") for k in trunk.state_dict())  # saved with the trunk
    # A horizontal ramp in every colour: x-gradient 8 x slope inside, y-gradient 0.
    ramp = torch.arange(12.0).repeat(12, 1)  # (12, 12), slope 1 along the width
    x = torch.stack([ramp, 2 * ramp, 3 * ramp]).unsqueeze(0)  # grey = mean = 2 x ramp
    with torch.no_grad():
        out = trunk.sobel(x)  # (1, 2, 12, 12)
    inner = out[0, :, 1:-1, 1:-1]
    torch.testing.assert_close(inner[0], torch.full((10, 10), -16.0))  # [1 0 -1] weights: -(1+2+1) x 2 x 2
    torch.testing.assert_close(inner[1], torch.zeros(10, 10))
    # The trunk still takes RGB and every tap works.
    with torch.no_grad():
        taps = trunk.eval().taps(torch.randn(2, 3, 64, 64))
    assert set(taps) == set(LAYERS)
    assert build_trunk(NetworkConfig(width=0.25, input_size=64, sobel=True)).blocks[0]["conv"].in_channels == 2
