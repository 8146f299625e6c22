"""`lr_factor`: linear warm-up then cosine decay to 0, checked against hand-computed values."""

from __future__ import annotations

import math

import pytest

from openseg_cli.engine.schedule import lr_factor


def test_warmup_ramps_linearly_to_one() -> None:
    # 4 warm-up steps: the factor after step s (0-based) is (s + 1) / 4.
    assert [lr_factor(s, 104, 4, "cosine") for s in range(4)] == [0.25, 0.5, 0.75, 1.0]


def test_cosine_hand_values() -> None:
    # Warm-up 4, cosine over the remaining 100 steps: progress p = (step - 4) / 100.
    assert lr_factor(4, 104, 4, "cosine") == 1.0  # p = 0
    assert lr_factor(29, 104, 4, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))  # p = 1/4
    assert lr_factor(54, 104, 4, "cosine") == pytest.approx(0.5)  # half-way
    assert lr_factor(104, 104, 4, "cosine") == pytest.approx(0.0)  # the end


def test_cosine_is_monotone_and_stays_at_zero_past_the_end() -> None:
    values = [lr_factor(s, 50, 0, "cosine") for s in range(60)]
    assert values[0] == 1.0  # no warm-up: full rate from the first step
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert values[50:] == [pytest.approx(0.0)] * 10  # clamped, never negative or rising again


def test_constant_schedule() -> None:
    assert lr_factor(0, 100, 2, "constant") == 0.5
    assert [lr_factor(s, 100, 2, "constant") for s in (2, 50, 99, 150)] == [1.0] * 4


def test_unknown_schedule() -> None:
    with pytest.raises(ValueError, match="linear"):
        lr_factor(10, 100, 0, "linear")
