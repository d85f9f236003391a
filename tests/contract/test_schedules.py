"""contract.schedules: each kind's factor at named steps against the hand-computed value, and
the errors a wrong schedule gets before any compute."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from contract.schedules import CONSTANT, Schedule

COSINE = Schedule(kind="cosine")


def test_cosine_at_named_steps():
    # 100 steps: 1 at the start, 1/2 halfway, (1 + cos(pi/4)) / 2 a quarter in, 0 at the end.
    assert COSINE.factor(0, 10, 100) == 1.0
    assert COSINE.factor(25, 10, 100) == pytest.approx((1 + math.sqrt(2) / 2) / 2, rel=1e-15)
    assert COSINE.factor(50, 10, 100) == 0.5
    assert COSINE.factor(100, 10, 100) == 0.0
    assert COSINE.factor(150, 10, 100) == 0.0  # past the end it stays at 0
    assert COSINE.factor(0, 1, 0) == 1.0  # no steps: no division by zero


def test_steps_change_at_epoch_starts_only():
    # 10 steps an epoch, 10 epochs, x0.1 at 0.2 and 0.5 of the run: epochs 2 and 5.
    schedule = Schedule(kind="steps", at=(0.2, 0.5))
    assert [schedule.factor(s, 10, 100) for s in (0, 19)] == [1.0, 1.0]
    assert [schedule.factor(s, 10, 100) for s in (20, 49)] == [0.1, 0.1]
    assert [schedule.factor(s, 10, 100) for s in (50, 99)] == pytest.approx([0.01, 0.01])
    assert Schedule(kind="steps", at=(0.5,), gamma=0.5).factor(10, 10, 20) == 0.5  # another gamma


def test_a_short_run_starts_at_its_base_rate():
    """A milestone never falls on epoch 0: one epoch of RotNet's 0.3/0.6/0.9 trains at the base
    rate throughout (0.3 used to round to epoch 0: a tenth of the rate from the first step), and
    BiGAN's exponential decay over two epochs starts at the second."""
    lut = Schedule(kind="steps", at=(0.3, 0.6, 0.9))
    assert [lut.factor(s, 100, 100) for s in (0, 50, 99)] == [1.0, 1.0, 1.0]
    assert [lut.factor(e, 1, 3) for e in range(3)] == pytest.approx([1.0, 0.1, 0.01])  # 1, 2, 3 of 3
    decay = Schedule(kind="exponential", at=(0.5,), final=0.01)
    assert decay.factor(0, 1, 2) == 1.0 and decay.factor(1, 1, 2) == pytest.approx(0.01)


def test_fractions_keep_the_shape_of_a_shortened_run():
    """RotNet's milestones at 0.3/0.6/0.9 fall on epochs 15/30/45 of 50 and 3/6/9 of 10."""
    lut = Schedule(kind="steps", at=(0.3, 0.6, 0.9))

    def drops(epochs: int) -> list[int]:
        return [e for e in range(1, epochs) if lut.factor(e, 1, epochs) < lut.factor(e - 1, 1, epochs)]

    assert drops(50) == [15, 30, 45] and drops(10) == [3, 6, 9]


def test_milestones_in_epochs_equal_the_probe_protocols():
    """yukimasano/linear-probes' zheng_lr_schedule: x0.1 at epochs 10, 20, 30 of 36."""
    schedule = Schedule.at_epochs((10, 20, 30), 36)
    assert [schedule.factor(e, 1, 36) for e in (9, 10, 19, 20, 29, 30, 35)] == pytest.approx(
        [1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    assert Schedule.at_epochs((8, 11), 3) == CONSTANT  # milestones after the end never apply


def test_exponential_decays_from_its_start_to_final_at_the_last_epoch():
    bigan = Schedule(kind="exponential", at=(0.5,), final=0.01)
    assert [bigan.factor(e, 1, 100) for e in (0, 49)] == [1.0, 1.0]
    assert bigan.factor(50, 1, 100) == pytest.approx(0.01 ** (1 / 50))
    assert bigan.factor(99, 1, 100) == pytest.approx(0.01)


@pytest.mark.parametrize(("data", "message"), [
    ({"kind": "steps"}, "steps schedule takes at least one fraction"),
    ({"kind": "cosine", "at": [0.5]}, "cosine schedule takes no fraction"),
    ({"kind": "steps", "at": [0.6, 0.3]}, "ascending fractions"),
    ({"kind": "steps", "at": [15, 30]}, "each in \\(0, 1\\)"),
    ({"kind": "exponential", "at": [0.2, 0.5]}, "takes one fraction"),
    ({"kind": "linear"}, "'constant', 'cosine', 'steps' or 'exponential'"),
])
def test_a_wrong_schedule_is_an_error(data, message):
    with pytest.raises(ValidationError, match=message):
        Schedule.model_validate(data)


def test_a_bare_name_is_a_kind():
    assert Schedule.model_validate("cosine") == COSINE
