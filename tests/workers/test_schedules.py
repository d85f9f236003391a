"""workers.schedules: each schedule's factor at named steps, against the hand-computed value."""

from __future__ import annotations

import math

import pytest

from workers.schedules import COSINE, factor, step_decay


def test_cosine_at_named_steps():
    # 100 steps: 1 at the start, 1/2 halfway, (1 + cos(pi/4)) / 2 a quarter in, 0 at the end.
    assert factor(COSINE, 0, 10, 100) == 1.0
    assert factor(COSINE, 25, 10, 100) == pytest.approx((1 + math.sqrt(2) / 2) / 2, rel=1e-15)
    assert factor(COSINE, 50, 10, 100) == 0.5
    assert factor(COSINE, 100, 10, 100) == 0.0
    assert factor(COSINE, 150, 10, 100) == 0.0  # past the end it stays at 0
    assert factor(COSINE, 0, 1, 0) == 1.0  # no steps: no division by zero


def test_cosine_is_bit_identical_to_the_former_pretraining_factor():
    # What tasks.cosine_factor computed before the schedules were one module.
    def former(step: int, total: int) -> float:
        return 1.0 * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))

    for total in (1, 7, 4000):
        assert all(factor(COSINE, s, 3, total) == former(s, total) for s in range(0, total + 2))


def test_steps_per_step_at_named_steps():
    # Finetuning: 10 steps an epoch, x0.1 at epochs 2 and 5.
    schedule = step_decay((2, 5))
    assert schedule == ("steps", (2, 5), 0.1)
    assert [factor(schedule, s, 10, 100) for s in (0, 19)] == [1.0, 1.0]
    assert [factor(schedule, s, 10, 100) for s in (20, 49)] == [0.1, 0.1]
    assert [factor(schedule, s, 10, 100) for s in (50, 99)] == [0.1**2, 0.1**2]
    assert factor(("steps", (1,), 0.5), 10, 10, 20) == 0.5  # another gamma


def test_steps_per_epoch_is_step_epoch_with_one_step_an_epoch():
    # RotNet's upstream LUT with base 0.01: 0.01 until epoch 15, 1e-3 until 30, 1e-4 until
    # 45, 1e-5 until 50.
    lut = step_decay((15, 30, 45))
    rates = {e: 0.01 * factor(lut, e, 1, 50) for e in (0, 14, 15, 29, 30, 44, 45, 49)}
    expected = {0: 1e-2, 14: 1e-2, 15: 1e-3, 29: 1e-3, 30: 1e-4, 44: 1e-4, 45: 1e-5, 49: 1e-5}
    assert rates == pytest.approx(expected, rel=1e-12)


def test_an_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="'linear' is not one of cosine, steps"):
        factor(("linear",), 0, 1, 1)
