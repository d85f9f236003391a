"""`train_augment` of finetuning and of supervised pre-training (ours): false trains on each
whole train image resized to the input size, in every epoch, as the `fast` probes see their
train images."""

from __future__ import annotations

import numpy as np
import torch

from contract.jobs import LabelledData, PretrainJob
from contract.methods import SupervisedConfig
from contract.network import NetworkConfig
from contract.recorder import MemoryRecorder
from workers import tasks
from workers.data.probe_sets import LabelledSamples, ProbeSplit, eval_views, resized


def test_unaugmented_samples_are_the_whole_image_in_every_epoch(fashion_train: ProbeSplit):
    """Mutation tried: `at_epoch` dropping the setting (epoch 1 back to random crops) fails it."""
    split = ProbeSplit(fashion_train.images[:8], fashion_train.labels[:8], 10)
    plain = LabelledSamples(split, 64, seed=0, augment=False)
    for epoch in (0, 1, 5):
        view = plain.at_epoch(epoch)
        for i in range(8):
            assert torch.equal(view.raw(i), resized([split.images[i]], 64)[0])
        x, y = view.batch(np.arange(8), torch.device("cpu"))
        torch.testing.assert_close(x, eval_views(split.images, 64, "resize")[0])  # the probes' train view
        assert torch.equal(y, split.labels)
    cropped = LabelledSamples(split, 64, seed=0)
    assert not torch.equal(cropped.at_epoch(1).raw(0), plain.at_epoch(1).raw(0))


def test_supervised_pretraining_reads_whole_images_when_asked(fashion_root: str):
    for augment in (True, False):
        job = PretrainJob(
            key="s", label="s", method=SupervisedConfig(train_samples=20, train_augment=augment),
            network=NetworkConfig(width=0.25, input_size=64), seed=0,
            labels=LabelledData(dataset="fashion_mnist", data_root=fashion_root),
        )
        samples = tasks.training_set(job, MemoryRecorder())
        assert isinstance(samples, LabelledSamples) and samples.at_epoch(3).augment is augment
    assert SupervisedConfig(train_augment=False).label == "supervised(train_augment=False)"
