"""The batched augmentation (workers.data.batch_*) against its reference, workers.data.augment.augment.

The two pipelines must draw the same samples: bit-identical parameters per index (the
vectorised numpy streams against op_rng itself), per-sample images that agree up to
interpolation, and the same statistics over many samples. No timings here (bench/ has them).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from contract.augmentation import AugmentConfig
from workers.data.augment import augment, to_input
from workers.data.batch_augment import BatchAugmenter, _runs_first, affine_grid, normalise, to_uint8
from workers.data.batch_jitter import color_jitter_batch
from workers.data.batch_params import BatchParams, draw_params, draw_params_reference
from workers.data.ops import OP_IDS, OPS, Op, Paint, Warp, op_rng, table
from workers.data.streams import Streams

FULL = AugmentConfig(preset="full")
NO_JITTER = AugmentConfig(preset="full", jitter=None)
FLIP = AugmentConfig(preset="full", hflip=0.5)  # the official script has no flip: switched on
CONFIGS = {
    "full": FULL,
    "asano2020 (flip)": AugmentConfig(preset="asano2020"),
    "none": AugmentConfig(preset="none"),
    "full, no initial crop, wide ratios": AugmentConfig(
        preset="full", initial_crop=None, crop_ratio=(0.3, 3.0)
    ),
    "rotation only": AugmentConfig(preset="none", rotation=30.0),
    "crop only, large (retries)": AugmentConfig(preset="none", crop_scale=(0.2, 1.0)),
}
SHAPES = {"one square": [(512, 512)], "three shapes": [(128, 128), (200, 512), (301, 97)]}


def per_sample(
    images: list[torch.Tensor], config: AugmentConfig, size: int, seed: int, indices
) -> torch.Tensor:
    """The reference: augment() sample by sample, as MonoDataset does. uint8 (B, 3, S, S)."""
    return torch.stack(
        [augment(images[i % len(images)], config, size, seed, int(i)) for i in indices]
    )


def batched(
    images: list[torch.Tensor], config: AugmentConfig, size: int, seed: int, indices
) -> torch.Tensor:
    return to_uint8(BatchAugmenter(images, config, size, seed)(indices))


def mean_abs_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) per-sample mean absolute difference in grey levels (0..255)."""
    return (a.float() - b.float()).abs().mean(dim=(1, 2, 3))


# --- the streams ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2**32 - 1])
def test_streams_replay_numpy_generators_bit_for_bit(seed: int):
    indices = np.array([0, 1, 2, 7, 1000, 1_281_166, 2**32 - 1])
    streams = Streams(np.stack([np.full(len(indices), seed), np.full(len(indices), 3), indices]))
    gens = [np.random.default_rng([seed, 3, int(i)]) for i in indices]
    at = np.arange(len(indices))
    highs = np.array([1, 2, 3, 100, 513, 3_000_000_000, 7])  # 1: a range of one value draws nothing
    # Mixed draws interleave PCG64's buffered 32-bit halves with 64-bit ones, as crop_box does.
    for draw in ("random", "integers", "uniform", "integers", "integers", "random", "integers"):
        if draw == "random":
            got, want = streams.random(at), [g.random() for g in gens]
        elif draw == "uniform":
            got, want = streams.uniform(at, -30.0, 30.0), [g.uniform(-30.0, 30.0) for g in gens]
        else:
            got, want = (
                streams.integers(at, highs),
                [g.integers(0, h) for g, h in zip(gens, highs, strict=True)],
            )
        np.testing.assert_array_equal(got, np.array(want), err_msg=draw)


def test_streams_advance_only_the_streams_asked():
    streams = Streams(np.array([[5, 5], [2, 2], [10, 11]]))
    a, b = np.random.default_rng([5, 2, 10]), np.random.default_rng([5, 2, 11])
    assert streams.random(np.array([0]))[0] == a.random()
    assert streams.random(np.array([0]))[0] == a.random()
    assert streams.random(np.array([1]))[0] == b.random()


# --- the parameters ---------------------------------------------------------------------------


def assert_same_params(got: BatchParams, want: BatchParams) -> None:
    for field in dataclasses.fields(got):
        if field.name != "draws":
            np.testing.assert_array_equal(getattr(got, field.name), getattr(want, field.name), err_msg=field.name)
    assert got.draws.keys() == want.draws.keys()
    for op, draws in got.draws.items():
        assert draws.keys() == want.draws[op].keys(), op
        for k, v in draws.items():
            np.testing.assert_array_equal(v, want.draws[op][k], err_msg=f"{op}.{k}")


@pytest.mark.parametrize("shapes", list(SHAPES.values()), ids=list(SHAPES))
@pytest.mark.parametrize("config", list(CONFIGS.values()), ids=list(CONFIGS))
def test_batched_parameters_are_augments_own_draws(config: AugmentConfig, shapes):
    indices = np.arange(600) * 7 + 3
    got = draw_params(config, shapes, seed=11, indices=indices)
    want = draw_params_reference(config, shapes, seed=11, indices=indices)
    assert_same_params(got, want)


def test_reference_draws_follow_augments_decision_rules():
    """draw_params_reference is the spec: check it against op_rng directly, op by op."""
    indices = range(40)
    p = draw_params_reference(FLIP, [(512, 512)], seed=4, indices=indices)
    flip, jitter, affine = p.draws["hflip"]["flip"], p.draws["jitter"], p.draws["affine"]
    for i in indices:
        assert flip[i] == (op_rng(4, OP_IDS["hflip"], i).random() < FLIP.hflip)
        rng = op_rng(4, OP_IDS["jitter"], i)
        assert jitter["applies"][i] == (rng.random() < FULL.jitter_p)
        if jitter["applies"][i]:
            assert jitter["brightness"][i] == rng.uniform(0.6, 1.4)
        rng = op_rng(4, OP_IDS["affine"], i)
        assert (affine["angle"][i], affine["shear"][i]) == (rng.uniform(-30, 30), rng.uniform(-30, 30))
    assert flip.any() and not flip.all() and jitter["applies"].any() and not jitter["applies"].all()
    # Crop boxes lie inside the source; the initial crop is a 256 px square of the 512 px photo.
    assert (p.top >= 0).all() and (p.left >= 0).all()
    assert (p.top + p.height <= 512).all() and (p.left + p.width <= 512).all()
    assert p.height.max() <= 256 and p.width.max() <= 256


def test_one_declaration_of_the_ops():
    """workers.data.ops.OPS is the one list: every setting is read by exactly one op; stream ids
    are fixed forever; without added ops a config's table is OPS."""
    read = [field for op in OPS for field in op.fields]
    assert sorted(read) == sorted(set(AugmentConfig.model_fields) - {"preset", "loader", "ops"})  # loader: stage 2
    assert {op.name: op.stream for op in OPS} == {
        "initial_crop": 1, "crop": 2, "affine": 3, "hflip": 4, "jitter": 5, "vflip": 6,
    }  # part of every trained number: renumbering one changes every sample
    on = {name: [op.name for op in OPS if op.on(AugmentConfig(preset=name))] for name in ("none", "full")}
    assert on == {"none": [], "full": ["initial_crop", "crop", "affine", "jitter"]}
    assert table(FULL) is OPS


def never(image: torch.Tensor, draw: dict) -> torch.Tensor:
    raise AssertionError("not rendered")


@pytest.mark.parametrize("kind", [Warp(frame="output", draw=never, render=never), Paint(draw=never, render=never)])
def test_an_op_without_a_batched_render_is_an_error_where_the_table_is_built(kind):
    """Not a silent skip: training, which renders batches, would train without the op."""
    with pytest.raises(ValueError, match="'mirror' has no batched render"):
        Op("mirror", 50, (), lambda c: True, kind)


def test_indices_beyond_32_bits_take_the_scalar_path():
    indices = np.array([2**32 - 1, 2**32, 2**40 + 5])
    got = draw_params(FULL, [(300, 400)], seed=0, indices=indices)
    want = draw_params_reference(FULL, [(300, 400)], seed=0, indices=indices)
    assert_same_params(got, want)


def test_no_fitting_crop_raises_as_augment_does():
    impossible = AugmentConfig(preset="none", crop_scale=(1.0, 1.0), crop_ratio=(2.0, 3.0))
    with pytest.raises(ValueError, match="no crop"):
        draw_params(impossible, [(100, 100)], seed=0, indices=[0, 1])


# --- the pixels -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [7, 64])
def test_affine_grid_is_torchs(size: int):
    theta = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(0))
    expected = F.affine_grid(theta, [5, 1, size, size], align_corners=False)
    torch.testing.assert_close(affine_grid(theta, size), expected, atol=1e-6, rtol=0)


def test_color_jitter_batch_is_torchvisions_adjust_ops_per_sample():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 3, 16, 16, generator=g)
    x[0] = 0.5  # grey: no hue at all
    x[1, :, :4, :4] = torch.tensor([1.0, 1.0, 0.0]).view(3, 1, 1)  # saturated yellow
    b, c, s = (torch.rand(12, generator=g) * 0.8 + 0.6 for _ in range(3))
    h = torch.rand(12, generator=g) * 0.2 - 0.1
    expected = torch.stack(
        [
            TF.adjust_hue(
                TF.adjust_saturation(
                    TF.adjust_contrast(TF.adjust_brightness(x[i], float(b[i])), float(c[i])),
                    float(s[i]),
                ),
                float(h[i]),
            )
            for i in range(12)
        ]
    )
    torch.testing.assert_close(color_jitter_batch(x, b, c, s, h), expected, atol=1e-5, rtol=0)


def test_output_is_a_float_batch_in_the_unit_range(small_astronaut: torch.Tensor):
    out = BatchAugmenter([small_astronaut], FULL, 32, seed=0)([3, 1, 4, 1, 5])
    assert out.shape == (5, 3, 32, 32) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(out[1], out[3])  # index 1 twice: the same sample
    empty = BatchAugmenter([small_astronaut], FULL, 32, seed=0)([])
    assert empty.shape == (0, 3, 32, 32)


def test_render_order_makes_the_first_two_masks_one_run_each():
    """The fill's samples and the first paint's are each a slice of the ordered batch (fill
    only, both, paint only, neither: the order the code had for the fill and the jitter)."""
    masks = [np.random.default_rng(k).random(300) < 0.5 for k in range(3)]
    order = np.argsort(_runs_first(masks), kind="stable")
    for mask in masks[:2]:
        on = np.flatnonzero(mask[order])
        assert on[-1] - on[0] + 1 == len(on)
    fill, jitter = masks[0][order], masks[1][order]
    key = np.where(fill, jitter, 3 - jitter)  # fill only 0, both 1, jitter only 2, neither 3
    assert (np.diff(key) >= 0).all()


def test_normalise_is_to_input():
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    torch.testing.assert_close(normalise(x.float() / 255), to_input(x), atol=1e-6, rtol=0)


def smooth_source(height: int, width: int) -> torch.Tensor:
    """uint8 (3, H, W) of slow sinusoids: interpolation methods agree on it, geometry does not."""
    y, x = torch.meshgrid(torch.arange(height).float(), torch.arange(width).float(), indexing="ij")
    channels = [torch.sin(x / 40 + y / 90), torch.cos(y / 55), torch.sin((x - y) / 70)]
    return torch.stack([128 + 100 * c for c in channels]).round().to(torch.uint8)


GEOMETRIES = {
    "full without jitter": NO_JITTER,
    "none": AugmentConfig(preset="none"),
    "rotation and shear": AugmentConfig(preset="none", rotation=30.0, shear=30.0),
    "both flips": AugmentConfig(preset="full", jitter=None, hflip=0.5, vflip=0.5),
}


@pytest.mark.parametrize("config", list(GEOMETRIES.values()), ids=list(GEOMETRIES))
@pytest.mark.parametrize("size", [32, 64])
def test_same_crop_and_affine_give_the_same_image(config: AugmentConfig, size: int):
    """Geometry: on a smooth source the one grid-sample lands exactly where resized_crop +
    affine + centre crop + flips do (within a grey level), for sources of several shapes."""
    images = [smooth_source(512, 512), smooth_source(300, 512), smooth_source(400, 260)]
    indices = range(24)
    error = mean_abs_error(
        batched(images, config, size, 0, indices), per_sample(images, config, size, 0, indices)
    )
    assert error.median() < 0.6 and error.max() < 1.5, error


@pytest.mark.parametrize("size", [32, 64])
def test_photos_differ_only_by_interpolation(astronaut: torch.Tensor, size: int):
    """On a photograph the pipelines differ by interpolation (one bilinear read of a pyramid
    level against bicubic resize then bilinear affine): a few grey levels on average."""
    images = [astronaut, astronaut[:, 50:350, :]]  # a square and a wide source
    indices = range(24)
    error = mean_abs_error(
        batched(images, NO_JITTER, size, 0, indices),
        per_sample(images, NO_JITTER, size, 0, indices),
    )
    assert error.median() < 5 and error.max() < 10, error


def test_a_wrong_geometry_would_be_caught(astronaut: torch.Tensor):
    """The closeness bound is tight enough to matter: other samples' parameters are far."""
    images = [astronaut]
    ours = batched(images, NO_JITTER, 32, 0, range(12))
    shifted = per_sample(images, NO_JITTER, 32, 0, range(1, 13))
    assert mean_abs_error(ours, shifted).median() > 15


def test_colour_jitter_gives_close_images(small_astronaut: torch.Tensor):
    """Jitter every sample of an unmoved image: only the colour ops differ (uint8 rounding in
    the reference, float here). At 64 px the 91 px canvas reads the 128 px source at its own
    level (1.4 source pixels per canvas pixel); at 32 px (2.8) the nearest pyramid level
    is the 32 px one, whose blur alone is ~12 grey levels on this photo."""
    config = AugmentConfig(preset="none", jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=1.0)
    indices = range(16)
    ours = batched([small_astronaut], config, 64, 0, indices)
    theirs = per_sample([small_astronaut], config, 64, 0, indices)
    error = mean_abs_error(ours, theirs)
    assert error.median() < 4 and error.max() < 8, error


def test_switching_hflip_off_changes_only_the_flipped_samples(small_astronaut: torch.Tensor):
    flips = draw_params(FLIP, [(128, 128)], 0, range(16)).draws["hflip"]["flip"]
    assert flips.any() and not flips.all()
    with_flip = batched([small_astronaut], FLIP, 32, 0, range(16))
    without = batched([small_astronaut], AugmentConfig(preset="full", hflip=0.0), 32, 0, range(16))
    for i, flipped in enumerate(flips):
        expected = TF.horizontal_flip(without[i]) if flipped else without[i]
        assert (with_flip[i].int() - expected.int()).abs().max() <= 1, (
            i
        )  # the same pixels, mirrored


def test_none_preset_gives_one_image_for_every_index(small_astronaut: torch.Tensor):
    out = BatchAugmenter([small_astronaut], AugmentConfig(preset="none"), 32, seed=0)(
        [0, 1, 17, 99]
    )
    assert all(torch.equal(out[0], out[i]) for i in range(1, 4))


def test_fill_matches_torchvisions_black_corners():
    """A white source: the black fill of a strong rotation + shear covers the same part of
    each sample as augment's, and a rotation within the sqrt(2) margin leaves no fill."""
    white = torch.full((3, 128, 128), 255, dtype=torch.uint8)
    sheared = AugmentConfig(preset="none", rotation=45.0, shear=60.0)
    indices = range(16)
    ours = (batched([white], sheared, 32, 0, indices) < 128).float().mean(dim=(1, 2, 3))
    theirs = (per_sample([white], sheared, 32, 0, indices) < 128).float().mean(dim=(1, 2, 3))
    assert (theirs > 0.01).sum() >= 4  # the fill does show
    assert (ours - theirs).abs().max() < 0.02, (ours, theirs)
    rotated = batched([white], AugmentConfig(preset="none", rotation=30.0), 32, 0, indices)
    assert rotated.min() > 200


def test_both_pipelines_draw_the_same_distribution(astronaut: torch.Tensor):
    """Over many samples of the paper's full augmentation, brightness and colour statistics
    agree (per-sample means, their spread, per channel)."""
    indices = range(160)
    ours = batched([astronaut], FULL, 32, 3, indices).float()
    theirs = per_sample([astronaut], FULL, 32, 3, indices).float()
    ours_mean, theirs_mean = ours.mean(dim=(1, 2, 3)), theirs.mean(dim=(1, 2, 3))
    assert abs(ours_mean.mean() - theirs_mean.mean()) < 2.5  # grey levels
    assert abs(ours_mean.std() - theirs_mean.std()) < 2.5
    assert (ours_mean - theirs_mean).abs().median() < 3  # and sample by sample
    torch.testing.assert_close(ours.mean(dim=(0, 2, 3)), theirs.mean(dim=(0, 2, 3)), atol=3, rtol=0)
    # Contrast within a sample (pixel spread) survives the interpolation change.
    assert abs(ours.std(dim=(1, 2, 3)).mean() - theirs.std(dim=(1, 2, 3)).mean()) < 3


def test_many_small_sources_pack_into_one_atlas():
    """N drawn from a dataset (small images, many of them): every sample reads its own source."""
    g = torch.Generator().manual_seed(0)
    images = [smooth_source(28 + 4 * (i % 3), 32) for i in range(40)]
    images = [
        (im.int() + torch.randint(-60, 60, (3, 1, 1), generator=g)).clamp(0, 255).to(torch.uint8)
        for im in images
    ]
    config = AugmentConfig(preset="full", jitter=None, initial_crop=None)
    augmenter = BatchAugmenter(images, config, 32, seed=0)
    assert augmenter.atlas.shape[-1] < 8 * augmenter.atlas.shape[-2]  # shelves, not one tall column
    indices = range(80)
    error = mean_abs_error(to_uint8(augmenter(indices)), per_sample(images, config, 32, 0, indices))
    assert error.median() < 1 and error.max() < 3, error
