"""workers.methods.supervised and its labelled training set, on real Fashion-MNIST."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from contract.methods import SupervisedConfig
from tests.workers.steps import fit
from workers.data.augment import to_input
from workers.data.probe_sets import LabelledSamples, ProbeSplit, stratified_subset, subset
from workers.methods.supervised import Supervised
from workers.models.alexnet import AlexNet

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def small_train(fashion_train: ProbeSplit) -> ProbeSplit:
    return subset(fashion_train, stratified_subset(fashion_train.labels, 40))


def test_labelled_samples_items(small_train: ProbeSplit):
    data = LabelledSamples(small_train, size=64, seed=0)
    assert len(data) == 40 and data.classes == 10
    x, y = data[3]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    assert y == small_train.labels[3] and y.dtype == torch.int64
    raw = data.raw(3)
    assert raw.dtype == torch.uint8 and raw.shape == (3, 64, 64)
    torch.testing.assert_close(x, to_input(raw))
    assert torch.equal(raw[0], raw[1])  # grey images, as RGB


def test_labelled_batches_are_the_items_stacked(small_train: ProbeSplit):
    data = LabelledSamples(small_train, size=64, seed=0).at_epoch(2)
    x, y = data.batch(np.array([7, 0, 7]), torch.device("cpu"))
    assert torch.equal(x, torch.stack([data[i][0] for i in (7, 0, 7)]))
    assert torch.equal(y, small_train.labels[[7, 0, 7]])


def test_labelled_samples_change_crops_by_epoch_not_by_rerun(small_train: ProbeSplit):
    data = LabelledSamples(small_train, size=64, seed=0)
    assert torch.equal(data.raw(5), LabelledSamples(small_train, size=64, seed=0).raw(5))
    assert not torch.equal(data.raw(5), data.at_epoch(1).raw(5))
    assert torch.equal(data.at_epoch(1).raw(5), data.at_epoch(1).raw(5))
    assert not torch.equal(data.raw(5), LabelledSamples(small_train, size=64, seed=1).raw(5))


def supervised() -> Supervised:
    torch.manual_seed(0)
    return Supervised(SupervisedConfig(), AlexNet(width=0.25), 64, classes=10)


def test_supervised_needs_the_class_count():
    with pytest.raises(ValueError, match="classes"):
        Supervised(SupervisedConfig(), AlexNet(width=0.25), 64)


def test_epoch_start_moves_the_crops_to_the_epoch(small_train: ProbeSplit):
    data = LabelledSamples(small_train, size=64, seed=0)
    epoch_data = supervised().on_epoch_start(2, data, CPU)
    assert isinstance(epoch_data, LabelledSamples) and epoch_data.epoch == 2
    assert torch.equal(epoch_data.raw(0), data.at_epoch(2).raw(0))


def test_supervised_loss_falls_on_a_fixed_batch(small_train: ProbeSplit):
    method = supervised()
    optimizer = method.configure_optimizers()[0]
    assert isinstance(optimizer, torch.optim.SGD)
    data = LabelledSamples(small_train, size=64, seed=0)
    batch = default_collate([data[i] for i in range(20)])  # two of each class
    losses, metrics = fit(method, optimizer, batch, 20)
    assert set(metrics) == {"train_top1"} and 0 <= metrics["train_top1"] <= 100
    assert np.mean(losses[:3]) > 2.0  # about log 10 = 2.30: chance
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses
