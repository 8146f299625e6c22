"""The two CPU thread rules: training leaves a core per DataLoader worker, evaluation/prediction do not."""

from __future__ import annotations

import os

import pytest
import torch

from openseg_cli.engine.cpu import available_cores, share_cpu_cores, use_all_cores


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_training_leaves_one_core_per_worker(monkeypatch):
    monkeypatch.setattr("openseg_cli.engine.cpu.available_cores", lambda: 8)
    assert share_cpu_cores(3) == 5 and torch.get_num_threads() == 5
    assert share_cpu_cores(0) == 8
    assert share_cpu_cores(20) == 1  # never below one thread


def test_evaluation_uses_every_core_split_between_ranks(monkeypatch):
    monkeypatch.setattr("openseg_cli.engine.cpu.available_cores", lambda: 8)
    assert use_all_cores() == 8 and torch.get_num_threads() == 8
    assert use_all_cores(3) == 2  # 3 ranks side by side: 8 // 3 each, no oversubscription
    assert use_all_cores(16) == 1
    with pytest.raises(ValueError, match="processes"):
        use_all_cores(0)


def test_available_cores_is_the_affinity_mask():
    assert 1 <= available_cores() <= (os.cpu_count() or 1)
