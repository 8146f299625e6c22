"""The DDP strategy train builds: decided from the resolved process count, "auto" devices included."""

from __future__ import annotations

import torch

from openseg_cli.engine.train import _strategy, world_size_of
from tests.engine.helpers import tiny_recipe


def test_auto_devices_on_a_two_gpu_machine_get_our_ddp_settings(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    recipe = tiny_recipe("trainer.devices=auto", "trainer.accelerator=gpu")
    assert world_size_of(recipe) == 2
    strategy = _strategy("auto", world_size_of(recipe), find_unused=True)
    assert type(strategy).__name__ == "DDPStrategy"
    assert strategy._ddp_kwargs.get("find_unused_parameters") is True  # the teacher leaves params unused


def test_one_process_keeps_lightnings_default() -> None:
    assert _strategy("auto", 1) == "auto"
