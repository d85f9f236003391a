"""workers.methods: the rotation pretext task and the method registry."""

from __future__ import annotations

import pytest
import torch

from contract.augmentation import AugmentConfig
from contract.methods import METHODS, RotNetConfig
from tests.workers.steps import fit
from workers.data.mono import MonoDataset
from workers.methods.base import Method, NonFiniteLoss, implementation
from workers.methods.random_init import RandomInit
from workers.methods.rotnet import RotNet, rotate_batch
from workers.models.alexnet import AlexNet


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 1, 5, 5), (3, 3, 64, 64)])
def test_rotate_batch_shapes_and_labels(shape: tuple[int, ...]):
    x = torch.randn(shape)
    rotated, labels = rotate_batch(x)
    b = shape[0]
    assert rotated.shape == (4 * b, *shape[1:])
    assert labels.dtype == torch.int64
    assert labels.tolist() == [k for k in range(4) for _ in range(b)]  # (4B,): block k is k x 90
    for k in range(4):
        block = rotated[k * b : (k + 1) * b]  # (B, C, H, W)
        torch.testing.assert_close(torch.rot90(block, -k, dims=(2, 3)), x, rtol=0, atol=0)


def test_rotate_batch_turns_counter_clockwise_by_quarter_turns():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    rotated, _ = rotate_batch(x)
    assert rotated[0, 0].tolist() == [[1, 2], [3, 4]]
    assert rotated[1, 0].tolist() == [[2, 4], [1, 3]]  # 90 degrees
    assert rotated[2, 0].tolist() == [[4, 3], [2, 1]]  # 180 degrees
    assert rotated[3, 0].tolist() == [[3, 1], [4, 2]]  # 270 degrees


def test_rotnet_training_step_output():
    torch.manual_seed(0)
    method = RotNet(RotNetConfig(), AlexNet(width=0.25), input_size=64)
    loss, metrics = method.training_step(torch.randn(2, 3, 64, 64))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert loss.requires_grad
    assert set(metrics) == {"rotation_accuracy"} and 0 <= metrics["rotation_accuracy"] <= 1


def test_rotnet_loss_falls_on_a_fixed_batch(small_astronaut: torch.Tensor):
    # 8 mono samples of the astronaut, 64 px, width 0.25, 20 SGD steps on the same batch.
    torch.manual_seed(0)
    dataset = MonoDataset(
        [small_astronaut], AugmentConfig(preset="full"), 64, 8, 0, RotNetConfig().loader
    )
    batch = torch.stack([dataset.at_epoch(0)[i] for i in range(8)])  # (8, 3, 64, 64)
    method = RotNet(RotNetConfig(), AlexNet(width=0.25), input_size=64)
    optimizer = torch.optim.SGD(method.parameters(), lr=0.05, momentum=0.9)
    losses, _ = fit(method, optimizer, batch, 20)
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert first > 1.0  # about log 4 = 1.39 at the start: chance
    assert last < 0.7 * first, losses


def test_an_epoch_iterates_the_loader_view_of_that_epoch(small_astronaut: torch.Tensor):
    """Method.on_epoch_start's default: the dataset's view of the epoch (RotNet's loader crops
    of the 73 px samples, at the 64 px input), never the generated samples themselves.
    Mutation tried: the default returning the dataset unchanged: fails (73 px items)."""
    dataset = MonoDataset(
        [small_astronaut], AugmentConfig(preset="full"), 64, 8, 0, RotNetConfig().loader
    )
    method = RotNet(RotNetConfig(), AlexNet(width=0.25), input_size=64)
    epoch_data = method.on_epoch_start(3, dataset, torch.device("cpu"))
    assert len(epoch_data) == 8
    for i in (0, 5):
        assert epoch_data[i].shape == (3, 64, 64)
        assert torch.equal(epoch_data[i], dataset.at_epoch(3)[i])


def test_every_registered_method_names_its_implementation():
    # The shipped methods (a test may register a toy of its own in the same process).
    shipped = [s for s in METHODS if s.__module__ == "contract.methods"]
    methods = {settings.model_fields["name"].default: implementation(settings()) for settings in shipped}
    assert methods["random"] is RandomInit
    assert methods["rotnet"] is RotNet
    assert set(methods) == {"random", "rotnet", "supervised", "deepcluster", "bigan", "pixels"}
    assert all(issubclass(cls, Method) for cls in methods.values())
    assert RandomInit.trains is False and methods["pixels"] is RandomInit  # the raw-pixel control trains nothing
    assert all(cls.trains for name, cls in methods.items() if name not in ("random", "pixels"))


def test_non_finite_loss_carries_its_reason():
    error = NonFiniteLoss("pretext loss is nan at step 3")
    assert error.reason == "nan_loss"
    assert isinstance(error, FloatingPointError)
