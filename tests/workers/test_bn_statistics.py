"""workers.bn_statistics and random's `bn_statistics`: BatchNorm statistics re-estimated on data,
checked against the statistics of each BN layer's inputs computed by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from contract.augmentation import AugmentConfig
from contract.jobs import ImageFile, LabelledData, PretrainJob
from contract.methods import RandomConfig
from contract.network import NetworkConfig
from contract.recorder import MemoryRecorder
from workers import bn_statistics, tasks
from workers.models.alexnet import AlexNet

NETWORK = NetworkConfig(width=0.25, input_size=64)


@torch.no_grad()
def batch_statistics(trunk: AlexNet, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per BN layer, the channel mean and unbiased variance of its input, the blocks run by
    hand in train mode (each BN normalising by its batch's own statistics)."""
    stats = []
    x = trunk.sobel(x)
    for block in trunk.blocks:
        y = block["conv"](x)  # (B, C, H, W): the BN's input
        mean, var = y.mean((0, 2, 3)), y.var((0, 2, 3), unbiased=True)
        stats.append((mean, var))
        normalised = (y - mean[:, None, None]) / torch.sqrt(y.var((0, 2, 3), unbiased=False) + 1e-5)[:, None, None]
        x = block["pool"](torch.relu(normalised * block["bn"].weight[:, None, None] + block["bn"].bias[:, None, None]))
    return stats


def test_running_statistics_are_the_average_of_the_batches():
    """Mutations tried, each fails it: the momentum left at 0.1 (an average decaying towards the
    initial statistics); the statistics not reset first (an older estimate's batches count)."""
    torch.manual_seed(0)
    trunk = AlexNet(width=0.25).eval()
    weights = {k: v.clone() for k, v in trunk.state_dict().items() if "running" not in k and "tracked" not in k}
    batches = [torch.randn(n, 3, 64, 64) * 2 + 0.5 for n in (20, 19, 20)]
    bn_statistics.reestimate(trunk, [torch.randn(8, 3, 64, 64) + 5])  # an older estimate, to be replaced
    seen = bn_statistics.reestimate(trunk, batches)
    assert seen == 59 and not trunk.training
    per_batch = [batch_statistics(trunk, x) for x in batches]
    for i, block in enumerate(trunk.blocks):
        bn = block["bn"]
        torch.testing.assert_close(bn.running_mean, torch.stack([s[i][0] for s in per_batch]).mean(0))
        torch.testing.assert_close(bn.running_var, torch.stack([s[i][1] for s in per_batch]).mean(0))
        assert bn.momentum == 0.1  # as it was
    for k, v in trunk.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), f"{k} changed"


def test_batches_cover_the_samples_once_in_near_equal_sizes():
    parts = list(bn_statistics.batches(600))
    assert np.array_equal(np.concatenate(parts), np.arange(600))
    assert {len(p) for p in parts} == {200}  # 3 batches of 200, not 256 + 256 + 88
    assert {len(p) for p in bn_statistics.batches(10_000)} <= {250, 251}


def random_job(bn: str, **inputs: object) -> PretrainJob:
    method = RandomConfig() if bn == "init" else RandomConfig(bn_statistics=bn, samples=96)  # type: ignore[arg-type]
    return PretrainJob(key=f"random-{bn}", label=f"random {bn} s0", method=method, network=NETWORK, seed=0, **inputs)  # type: ignore[arg-type]


def running_means(checkpoint: Path) -> torch.Tensor:
    state = torch.load(checkpoint, weights_only=True)["trunk"]
    return torch.cat([v for k, v in state.items() if k.endswith("running_mean")])


def test_random_pretrain_reestimates_on_its_source(tmp_path: Path, astronaut_file: ImageFile, fashion_root: str):
    """`init` keeps BN's initial statistics (mean 0); `pretext` and `probe_train` re-estimate
    them on their own data: the same seed's weights, different statistics, `samples` recorded."""
    (tmp_path / "init").mkdir()
    init = tasks.pretrain(random_job("init"), MemoryRecorder(), tmp_path / "init")
    assert running_means(init).abs().max() == 0
    means = {}
    for bn, inputs in [
        ("pretext", {"images": (astronaut_file,), "augmentation": AugmentConfig(preset="full")}),
        ("probe_train", {"labels": LabelledData(dataset="fashion_mnist", data_root=fashion_root)}),
    ]:
        (tmp_path / bn).mkdir()
        recorder = MemoryRecorder()
        path = tasks.pretrain(random_job(bn, **inputs), recorder, tmp_path / bn)
        assert recorder.logged_params[None]["bn_samples"] == 96
        means[bn] = running_means(path)
        assert means[bn].abs().max() > 0
        weights = torch.load(path, weights_only=True)["trunk"]["blocks.0.conv.weight"]
        assert torch.equal(weights, torch.load(init, weights_only=True)["trunk"]["blocks.0.conv.weight"])
    assert not torch.allclose(means["pretext"], means["probe_train"])


@pytest.mark.parametrize("settings, message", [
    ({"samples": 500}, "initial BN statistics are not estimated"),
    ({"bn_statistics": "probe_train", "loader": {"crop": "random", "hflip": 0.0}}, "only bn_statistics pretext"),
])
def test_settings_that_would_do_nothing_are_refused(settings: dict, message: str):
    with pytest.raises(ValueError, match=message):
        RandomConfig(**settings)
