"""Learning-rate schedules as plain functions of the step (no Lightning): linear warm-up, cosine decay."""

from __future__ import annotations

import math


def lr_factor(step: int, max_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the base learning rate at `step` (0-based).

    `cosine`: linear warm-up over `warmup_steps` then cosine decay to 0 at `max_steps` [paper: cosine LR];
    `constant`: warm-up then 1. Raises ValueError for an unknown schedule name.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"unknown schedule {schedule!r} (cosine | constant)")
    span = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))
