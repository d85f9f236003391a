"""workers.data.augment and AugmentConfig: seeded per-op streams, crop boxes, presets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from contract.augmentation import AUGMENTATION_PRESETS, AugmentConfig
from workers.data.augment import augment
from workers.data.crop_boxes import crop_box
from workers.data.ops import FACTORS, OP_IDS, OPS, canvas_size, generated_size, op_rng

OP = {op.name: op for op in OPS}
FULL = AugmentConfig(preset="full")
FLIP = AugmentConfig(preset="full", hflip=0.5)  # the official script has no flip: switched on
SIZE = 32
INDICES = range(24)


@pytest.mark.parametrize("preset", ["full", "none"])
@pytest.mark.parametrize("size", [32, 64])
def test_augment_returns_uint8_square_rgb(small_astronaut: torch.Tensor, preset: str, size: int):
    out = augment(small_astronaut, AugmentConfig(preset=preset), size, seed=0, index=3)
    assert out.dtype == torch.uint8
    assert out.shape == (3, size, size)


def test_augment_on_a_non_square_source(astronaut: torch.Tensor):
    out = augment(astronaut[:, :200, :], FULL, SIZE, seed=1, index=0)  # (3, 200, 512)
    assert out.shape == (3, SIZE, SIZE)


def test_same_seed_and_index_give_the_same_sample(small_astronaut: torch.Tensor):
    for index in (0, 7):
        a = augment(small_astronaut, FULL, SIZE, seed=5, index=index)
        b = augment(small_astronaut, FULL, SIZE, seed=5, index=index)
        assert torch.equal(a, b)


def test_full_samples_differ_by_index_and_seed(small_astronaut: torch.Tensor):
    samples = [augment(small_astronaut, FULL, SIZE, seed=0, index=i) for i in range(6)]
    for i in range(len(samples)):
        for j in range(i):
            assert not torch.equal(samples[i], samples[j]), (i, j)
    assert not torch.equal(samples[0], augment(small_astronaut, FULL, SIZE, seed=1, index=0))


def test_augment_draws_nothing_from_global_random_state(small_astronaut: torch.Tensor):
    torch.manual_seed(0)
    np.random.seed(0)
    a = augment(small_astronaut, FULL, SIZE, seed=3, index=2)
    torch.manual_seed(123)
    np.random.seed(123)
    assert torch.equal(a, augment(small_astronaut, FULL, SIZE, seed=3, index=2))


def test_generated_and_canvas_sizes_are_upstreams():
    """The generator writes 256 px samples for a 224 px network, as the official script does,
    from a crop resized to its int(sqrt(2) * 256) = 362; at 64 px, 73 from 103.
    Mutation tried: generated_size returning the input size (the one-stage design) fails."""
    assert generated_size(224) == 256 and generated_size(64) == 73
    assert canvas_size(256) == 362 and canvas_size(73) == 103


def test_none_preset_gives_one_image_for_every_index(small_astronaut: torch.Tensor):
    none = AugmentConfig(preset="none")
    first = augment(small_astronaut, none, SIZE, seed=0, index=0)
    for seed, index in [(0, 1), (0, 17), (9, 4)]:
        assert torch.equal(first, augment(small_astronaut, none, SIZE, seed=seed, index=index))
    # ...and that image is the photo, not a blank (what part of it: the next test).
    assert first.float().std() > 20


def smooth_source(height: int, width: int) -> torch.Tensor:
    """uint8 (3, H, W) of slow sinusoids (periods of 130-440 px): interpolation methods agree on
    it within a grey level, a wrong geometry does not (tens of grey levels)."""
    y, x = torch.meshgrid(torch.arange(height).float(), torch.arange(width).float(), indexing="ij")
    channels = [torch.sin(x / 20 + y / 45), torch.cos(y / 27), torch.sin((x - y) / 35)]
    return torch.stack([128 + 100 * c for c in channels]).round().to(torch.uint8)


def central_part(image: torch.Tensor, box: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """By hand: the part of `box` (top, left, h, w) that upstream's pipeline keeps, resized to
    `size`. The box is stretched to a square canvas of round(sqrt(2) x size) and its centre
    `size` kept, so what remains is the box's central size / canvas (about 1/sqrt(2)) of each
    side."""
    top, left, h, w = box
    canvas = round(math.sqrt(2) * size)
    offset = round((canvas - size) / 2)  # torchvision's centre-crop offset
    return TF.resized_crop(
        image, round(top + h * offset / canvas), round(left + w * offset / canvas),
        round(h * size / canvas), round(w * size / canvas), [size, size],
        InterpolationMode.BICUBIC, antialias=True,
    )


@pytest.mark.parametrize("size", [32, 73])
def test_samples_without_affine_keep_the_margin_and_centre_crop(size: int):
    """`none` and `crop` (no rotation, no shear) still go through the generator's geometry, as
    upstream's always crop to sqrt(2) x 256 and centre-crop 256: a `none` sample is the central
    1/sqrt(2) of the largest centred square, a `crop` sample the central 1/sqrt(2) of its box.
    Mutation tried: the margin and centre crop only with an affine op (the former
    one-stage code): errors of 25-78 grey levels instead of < 2."""
    source = smooth_source(512, 512)
    none = augment(source, AugmentConfig(preset="none"), size, seed=0, index=0)
    error = (none.float() - central_part(source, (0, 0, 512, 512), size).float()).abs().mean()
    assert error < 1.5, error
    crop = AugmentConfig(preset="crop")
    for i in range(6):
        box = crop_box(512, 512, crop.crop_scale, crop.crop_ratio, op_rng(0, OP_IDS["crop"], i))
        sample = augment(source, crop, size, seed=0, index=i)
        error = (sample.float() - central_part(source, box, size).float()).abs().mean()
        assert error < 1.5, (i, box, error)


def draw_boxes(height: int, width: int, scale, ratio, n: int = 2000) -> np.ndarray:
    rng = op_rng(0, OP_IDS["crop"], 0)
    return np.array([crop_box(height, width, scale, ratio, rng) for _ in range(n)])  # (n, 4)


@pytest.mark.parametrize("height, width", [(512, 512), (300, 500)])
def test_crop_boxes_fall_inside_and_fill_the_configured_ranges(height: int, width: int):
    scale, ratio = FULL.crop_scale, FULL.crop_ratio  # (1/500, 1), (3/4, 4/3)
    boxes = draw_boxes(height, width, scale, ratio)
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (h > 0).all() and (w > 0).all()
    assert (top + h <= height).all() and (left + w <= width).all()
    area = h * w / (height * width)
    aspect = w / h
    # Sides are rounded to pixels: the smallest crops (about 16-23 px a side) move by up to
    # half a pixel per side, so allow a few percent around the configured bounds.
    assert area.min() >= scale[0] * 0.85 and area.max() <= scale[1]
    assert aspect.min() >= ratio[0] * 0.95 and aspect.max() <= ratio[1] * 1.05
    # ...and the draws reach both ends of both ranges.
    assert area.min() < 2 * scale[0]
    assert area.max() > 0.5
    assert aspect.min() < ratio[0] * 1.03 and aspect.max() > ratio[1] * 0.97
    # The aspect is log-uniform: about as many crops are tall as wide.
    assert 0.4 < (aspect < 1).mean() < 0.6


def test_crop_box_respects_a_narrow_scale_range():
    boxes = draw_boxes(400, 400, (0.25, 0.3), (1.0, 1.0), n=500)
    area = boxes[:, 2] * boxes[:, 3] / 400**2
    assert area.min() >= 0.25 * 0.99 and area.max() <= 0.3 * 1.01
    assert (boxes[:, 2] == boxes[:, 3]).all()  # ratio (1, 1): square crops


def test_crop_box_is_reproducible_from_its_stream():
    a = crop_box(512, 512, (0.1, 1.0), (0.75, 4 / 3), op_rng(4, OP_IDS["crop"], 11))
    b = crop_box(512, 512, (0.1, 1.0), (0.75, 4 / 3), op_rng(4, OP_IDS["crop"], 11))
    c = crop_box(512, 512, (0.1, 1.0), (0.75, 4 / 3), op_rng(4, OP_IDS["crop"], 12))
    assert a == b and a != c


def test_crop_box_raises_when_no_crop_can_fit():
    # The whole area with an aspect of 2-3 cannot fit a square: no centre-crop fallback.
    with pytest.raises(ValueError, match="no crop"):
        crop_box(100, 100, (1.0, 1.0), (2.0, 3.0), op_rng(0, OP_IDS["crop"], 0))


def test_op_streams_are_distinct_per_op_seed_and_index():
    draws = {
        (seed, op, index): op_rng(seed, OP_IDS[op], index).random()
        for seed in (0, 1)
        for op in ("initial_crop", "crop", "affine", "hflip", "jitter", "vflip")
        for index in (0, 1)
    }
    assert len(set(draws.values())) == len(draws)


def applied(op: str, p: float, seed: int = 0) -> list[bool]:
    """Whether op's first draw switched it on, per index: the augment() decision rule."""
    return [op_rng(seed, OP_IDS[op], i).random() < p for i in INDICES]


def test_switching_jitter_off_changes_only_the_jittered_samples(small_astronaut: torch.Tensor):
    no_jitter = AugmentConfig(preset="full", jitter=None)
    on = applied("jitter", FULL.jitter_p)
    assert any(on) and not all(on)
    for i, jittered in enumerate(on):
        a = augment(small_astronaut, FULL, SIZE, seed=0, index=i)
        b = augment(small_astronaut, no_jitter, SIZE, seed=0, index=i)
        assert torch.equal(a, b) != jittered, i
    # jitter_p = 0 is the same switch as jitter = None.
    zero_p = AugmentConfig(preset="full", jitter_p=0.0)
    for i in INDICES[:6]:
        assert torch.equal(
            augment(small_astronaut, zero_p, SIZE, seed=0, index=i),
            augment(small_astronaut, no_jitter, SIZE, seed=0, index=i),
        )


def test_switching_hflip_off_changes_only_the_flipped_samples(small_astronaut: torch.Tensor):
    no_flip = AugmentConfig(preset="full", hflip=0.0)
    on = applied("hflip", FLIP.hflip)
    assert any(on) and not all(on)
    for i, flipped in enumerate(on):
        a = augment(small_astronaut, FLIP, SIZE, seed=0, index=i)
        b = augment(small_astronaut, no_flip, SIZE, seed=0, index=i)
        # A flipped sample is exactly the mirror of the unflipped one: the crop, the affine
        # and the jitter drew the same numbers whether or not the flip was on.
        assert torch.equal(a, TF.horizontal_flip(b) if flipped else b), i
        assert torch.equal(a, b) != flipped, i


def test_flip_stream_is_independent_of_the_affine_path(small_astronaut: torch.Tensor):
    # With rotation and shear off the affine op draws nothing (the sqrt(2) margin and the centre
    # crop stay); the flip still draws from its own stream: the flipped samples are exact mirrors.
    no_affine = AugmentConfig(preset="full", rotation=0.0, shear=0.0, jitter=None, hflip=0.5)
    no_affine_flip = AugmentConfig(preset="full", rotation=0.0, shear=0.0, jitter=None, hflip=0.0)
    for i, flipped in enumerate(applied("hflip", 0.5)[:8]):
        a = augment(small_astronaut, no_affine, SIZE, seed=0, index=i)
        b = augment(small_astronaut, no_affine_flip, SIZE, seed=0, index=i)
        assert torch.equal(a, TF.horizontal_flip(b) if flipped else b), i


def test_preset_with_an_override_keeps_the_other_preset_values():
    config = AugmentConfig(preset="full", rotation=0)
    assert config.rotation == 0.0
    for name, value in AUGMENTATION_PRESETS["full"].items():
        if name != "rotation":
            assert getattr(config, name) == pytest.approx(value), name
    assert config.crop_scale == pytest.approx((1 / 500, 1.0))
    assert config.jitter == pytest.approx((0.4, 0.4, 0.4, 0.1))


def test_default_and_bare_string_presets():
    assert AugmentConfig() == AugmentConfig(preset="full")
    assert AugmentConfig.model_validate("none") == AugmentConfig(preset="none")
    none = AugmentConfig(preset="none")
    assert (
        none.crop_scale is None and none.jitter is None and none.hflip == 0 and none.rotation == 0
    )


def test_resolved_config_round_trips_through_json():
    config = AugmentConfig(preset="full", rotation=0, crop_scale=(0.1, 1.0))
    assert AugmentConfig.model_validate(config.model_dump(mode="json")) == config


def test_unknown_preset_is_a_validation_error_naming_the_allowed_ones():
    with pytest.raises(ValidationError, match="full, none, asano2020, official_script, crop, "):
        AugmentConfig(preset="fulll")


@pytest.mark.parametrize(
    "bad",
    [
        {"rotatoin": 10},  # a typo is an error, never silently dropped
        {"crop_scale": (0.5, 0.1)},
        {"crop_scale": (0.0, 1.0)},
        {"crop_ratio": (2.0, 1.0)},
        {"hflip": 1.5},
        {"initial_crop": 0.0},
        {"vflip": -0.1},
        {"jitter": (0.4, 0.4, 0.4, 0.6)},  # hue beyond half a turn
    ],
)
def test_invalid_augment_settings_are_rejected(bad: dict):
    with pytest.raises(ValidationError):
        AugmentConfig(preset="full", **bad)


def test_config_is_frozen():
    with pytest.raises(ValidationError):
        FULL.rotation = 0.0  # type: ignore[misc]


def test_crop_margin_keeps_rotation_corners_out():
    # The random-resized crop goes to sqrt(2) x size before the affine, so a rotated sample's
    # centre crop holds no black fill corner at all for a rotation-only config.
    rotate_only = AugmentConfig(preset="none", rotation=30.0)
    white = torch.full((3, 128, 128), 255, dtype=torch.uint8)
    for i in range(4):
        out = augment(white, rotate_only, SIZE, seed=0, index=i)
        assert out.min() > 200, i


def test_switching_vflip_on_flips_exactly_the_drawn_samples(small_astronaut: torch.Tensor):
    with_vflip = AugmentConfig(preset="full", vflip=0.5)
    on = applied("vflip", 0.5)
    assert any(on) and not all(on)
    for i, flipped in enumerate(on):
        a = augment(small_astronaut, with_vflip, SIZE, seed=0, index=i)
        b = augment(small_astronaut, FULL, SIZE, seed=0, index=i)
        # A flipped sample is exactly the mirror of the unflipped one (the jitter after the
        # flip works per pixel and on the image mean, so it commutes with it).
        assert torch.equal(a, TF.vertical_flip(b) if flipped else b), i
    # Its own stream: the horizontal flips are unchanged by switching vflip on.
    assert applied("hflip", 0.5) != on


def draws(fn, n: int = 2000) -> np.ndarray:
    return np.array([fn(op_rng(0, OP_IDS["affine"], i)) for i in range(n)])


@pytest.mark.parametrize("rotation, shear", [(35.0, 0.0), (30.0, 30.0), (10.0, 5.0)])
def test_drawn_angles_fall_in_and_fill_the_configured_ranges(rotation: float, shear: float):
    config = AugmentConfig(preset="none", rotation=rotation, shear=shear)
    angles, shears = draws(lambda rng: list(OP["affine"].kind.draw(rng, config).values())).T
    assert np.abs(angles).max() <= rotation and np.abs(shears).max() <= shear
    assert angles.min() < -0.98 * rotation and angles.max() > 0.98 * rotation
    if shear:
        assert shears.min() < -0.98 * shear and shears.max() > 0.98 * shear
    else:
        assert (shears == 0).all()
    # Uniform: about a quarter of the angles in each quarter of the range.
    quarters = np.histogram(angles, bins=4, range=(-rotation, rotation))[0] / len(angles)
    assert (np.abs(quarters - 0.25) < 0.04).all(), quarters


@pytest.mark.parametrize("strengths", [(0.4, 0.4, 0.4, 0.1), (0.8, 0.0, 0.2, 0.5)])
def test_drawn_jitter_factors_fall_in_and_fill_the_configured_ranges(strengths):
    config = AugmentConfig(preset="none", jitter=strengths, jitter_p=1.0)  # factors after the p-draw
    factors = draws(lambda rng: [OP["jitter"].kind.draw(rng, config)[k] for k in FACTORS])  # (n, 4)
    for column, s in enumerate(strengths[:3]):
        f = factors[:, column]
        assert f.min() >= 1 - s and f.max() <= 1 + s, column
        if s:
            assert f.min() < 1 - 0.98 * s and f.max() > 1 + 0.98 * s, column
        else:
            assert (f == 1).all()
    hue = factors[:, 3]
    assert np.abs(hue).max() <= strengths[3] and hue.min() < -0.98 * strengths[3] and hue.max() > 0.98 * strengths[3]


def test_jitter_factors_are_the_ones_applied(small_astronaut: torch.Tensor):
    # augment() applies exactly the factors the jitter's stream gives after its p-draw, uniform
    # in [1 - s, 1 + s] (hue: [-h, h]) in the order brightness, contrast, saturation, hue.
    only_jitter = AugmentConfig(preset="none", jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=1.0)
    plain = augment(small_astronaut, AugmentConfig(preset="none"), SIZE, seed=0, index=3)
    rng = op_rng(0, OP_IDS["jitter"], 3)
    rng.random()  # the p-draw
    b, c, s = (rng.uniform(0.6, 1.4) for _ in range(3))
    h = rng.uniform(-0.1, 0.1)
    expected = TF.adjust_hue(TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(plain, b), c), s), h)
    assert torch.equal(augment(small_astronaut, only_jitter, SIZE, seed=0, index=3), expected)


def test_official_script_preset_is_the_scripts_defaults():
    # yukimasano/single_img_pretraining make_dataset_single.py: no horizontal flip (the
    # method's loader flips, contract.augmentation.LoaderConfig); `full` is its alias.
    script = AugmentConfig(preset="official_script")
    assert script.initial_crop == 0.5
    assert script.crop_scale == pytest.approx((1 / 500, 1.0)) and script.crop_ratio == pytest.approx((3 / 4, 4 / 3))
    assert (script.rotation, script.shear) == (30.0, 30.0)
    assert script.jitter == pytest.approx((0.4, 0.4, 0.4, 0.1)) and script.jitter_p == 0.5
    assert (script.hflip, script.vflip) == (0.0, 0.0)
    assert script.model_dump(exclude={"preset"}) == AugmentConfig(preset="full").model_dump(exclude={"preset"})


def test_asano2020_preset_is_the_papers_description():
    # Crops of at least beta*H*W, rotation up to 35 degrees, flip with p = 0.5, colour
    # jitter, rescale; nothing else (no initial crop, no shear, no vertical flip).
    paper = AugmentConfig(preset="asano2020")
    assert paper.crop_scale == pytest.approx((1 / 500, 1.0))
    assert (paper.rotation, paper.shear, paper.hflip, paper.vflip) == (35.0, 0.0, 0.5, 0.0)
    assert paper.initial_crop is None and paper.jitter is not None and paper.jitter_p > 0


ABLATED = {  # the fields each ablated op owns
    "crop": {"crop_scale"},
    "rotation": {"rotation"},
    "flip": {"hflip"},
    "jitter": {"jitter", "jitter_p"},
}


def test_ablation_presets_cover_none_each_op_each_pair_and_all():
    names = [n for n in AUGMENTATION_PRESETS if set(n.split("+")) <= set(ABLATED)]
    assert len(names) == 15  # 4 alone + 6 pairs + 4 triples + all
    singles = [n for n in names if "+" not in n]
    pairs = [n for n in names if n.count("+") == 1]
    assert sorted(singles) == sorted(ABLATED) and len(pairs) == 6
    none, paper = AugmentConfig(preset="none"), AugmentConfig(preset="asano2020")
    for name in names:
        config = AugmentConfig(preset=name)
        on = set().union(*(ABLATED[op] for op in name.split("+")))
        for field in AugmentConfig.model_fields:
            if field == "preset":
                continue
            # An op's fields take asano2020's values; every other field stays off.
            want = getattr(paper if field in on else none, field)
            assert getattr(config, field) == want, (name, field)
    assert AugmentConfig(preset="crop+rotation+flip+jitter").model_dump(exclude={"preset"}) == paper.model_dump(
        exclude={"preset"}
    )


@pytest.mark.parametrize("name", ["crop", "rotation", "flip", "jitter"])
def test_each_op_alone_makes_samples_differ(small_astronaut: torch.Tensor, name: str):
    config = AugmentConfig(preset=name)
    samples = [augment(small_astronaut, config, SIZE, seed=0, index=i) for i in range(8)]
    assert len({s.numpy().tobytes() for s in samples}) > 1, name
