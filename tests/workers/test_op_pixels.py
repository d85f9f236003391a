"""Every augmentation op, per sample against batched: the same draws, the same pixels.

Parametrised over the table: the shipped ops (workers.data.ops.OPS) and every added op whose
settings are registered, the toy of tests/plugin among them (imported here as its package's
entry point would be), so a new op is covered without editing this file. Each op is switched
on alone over the `none` preset with its declared `example` settings; both paths draw
bit-identical parameters, and their pixels differ only by interpolation. The tolerance, on a
smooth source (where interpolation methods agree): per sample, a mean |difference| under 3
grey levels, and under 2 for the median sample (measured: 0.1-0.7 for the geometric ops and
the toy, 1.3-2.0 for the colour jitter, whose reference rounds to uint8 after each of its four
steps); an op that renders wrongly misses by tens of levels. An op without a batched render
fails where its table is built (tests/workers/test_batch_augment.py checks the error).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contract.augmentation import AUGMENTATION_OPS, AugmentConfig, LoaderConfig
from tests.toy_op import import_toy_op
from tests.workers.test_batch_augment import assert_same_params, batched, mean_abs_error, per_sample, smooth_source
from tests.workers.test_batch_loader import TOLERANCE
from workers.data.batch_augment import to_uint8
from workers.data.batch_params import draw_params, draw_params_reference
from workers.data.mono import MonoDataset
from workers.data.ops import OPS, added, op_rng, table

toy = import_toy_op()  # registers toy_invert

TABLE = OPS + tuple(added(settings) for settings in AUGMENTATION_OPS)
NONE = AugmentConfig(preset="none")


def alone(op) -> AugmentConfig:
    """`none` with only `op` switched on (its example settings)."""
    config = AugmentConfig(preset="none", **op.example)
    assert [o.name for o in table(config) if o.on(config)] == [op.name], "its example must switch it on alone"
    return config


@pytest.mark.parametrize("op", TABLE, ids=[op.name for op in TABLE])
def test_both_paths_draw_the_same_parameters_for_each_op(op):
    shapes = [(512, 512), (300, 512)]
    indices = np.arange(200) * 3 + 1
    config = alone(op)
    assert_same_params(draw_params(config, shapes, 7, indices), draw_params_reference(config, shapes, 7, indices))


@pytest.mark.parametrize("size", [32, 73])
@pytest.mark.parametrize("op", TABLE, ids=[op.name for op in TABLE])
def test_both_paths_render_each_op_alike(op, size: int):
    images = [smooth_source(512, 512), smooth_source(300, 512)]
    indices = range(24)
    config = alone(op)
    theirs = per_sample(images, config, size, 0, indices)
    error = mean_abs_error(batched(images, config, size, 0, indices), theirs)
    assert error.median() < 2 and error.max() < 3, error
    # The op does move or change pixels (else agreeing would say nothing).
    assert (mean_abs_error(theirs, per_sample(images, NONE, size, 0, indices)) > 10).any()


def test_a_mono_dataset_renders_the_added_op(small_astronaut: torch.Tensor):
    """The toy op through the dataset training uses, in this process: the samples its stream
    inverts are exactly inverted, and the batched loader views match the per-sample ones."""
    config = AugmentConfig(preset="none", ops=[{"name": "toy_invert", "p": 0.5}])
    loader = LoaderConfig(crop="random", hflip=0.5)
    plain = MonoDataset([small_astronaut], NONE, 64, 16, seed=3)
    dataset = MonoDataset([small_astronaut], config, 64, 16, seed=3, loader=loader)
    inverted = [op_rng(3, toy.InvertConfig.stream, i).random() < 0.5 for i in range(16)]
    assert any(inverted) and not all(inverted)
    for i, flip in enumerate(inverted):
        assert torch.equal(dataset.raw(i), 255 - plain.raw(i) if flip else plain.raw(i)), i
    view = dataset.at_epoch(1)
    error = mean_abs_error(to_uint8(view.pixels(np.arange(16), torch.device("cpu"))),
                           torch.stack([view.raw(i) for i in range(16)]))
    mean, worst, _ = TOLERANCE[64]  # the photo's interpolation, as without the op
    assert error.mean() <= mean and error.max() <= worst, error


def test_both_paths_render_every_op_together():
    """All of the table at once: the warps multiply into one map, and with three masks (the
    fill, the jitter's, the toy's) the last paint's samples are gathered by index."""
    settings, added_ops = {}, []
    for op in TABLE:
        example = dict(op.example)
        added_ops += example.pop("ops", ())
        settings.update(example)
    config = AugmentConfig(preset="none", **settings, ops=added_ops)
    assert all(op.on(config) for op in table(config)) and len(table(config)) == len(TABLE)
    images = [smooth_source(512, 512), smooth_source(300, 512)]
    indices = range(48)
    error = mean_abs_error(batched(images, config, 73, 0, indices), per_sample(images, config, 73, 0, indices))
    assert error.median() < 2 and error.max() < 3, error
