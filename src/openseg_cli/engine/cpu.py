"""CPU thread budgeting for training, evaluation and prediction on machines without an accelerator.

Two rules, because the DataLoader workers are busy in one case and idle in the other:
- training (`share_cpu_cores`): each worker decodes, crops and builds targets for every sample (~13 ms
  per 640-px image) while a small model's step takes well under a second, so the workers keep their
  cores busy; torch gets the rest. Giving torch all cores oversubscribed them: the toy training step went
  from 0.46 s on one free core to ~2 s when contended.
- evaluation and prediction (`use_all_cores`): a worker reads one image + label in ~4 ms while the model's
  forward takes seconds (ViT-B/16 at 640 px: ~17 s on one thread here), so the worker sleeps on a
  full prefetch queue > 99 % of the time. Reserving a core for it left torch 1 thread of 2 for the
  forward and for encoding the vocabulary (~98 s for the 847 ADE names); torch gets every core instead.
  The cost, on a machine whose cores other jobs also use: a multi-threaded torch op waits for a time
  slice on the busy core, so many small ops get slower (building the ViT-B/16 model took 2.5 to 3 s with
  2 threads instead of 1 s with 1 under a load of ~2); the per-image confusion update therefore counts
  in numpy, and the forward, which dominates, still gains (~17 → ~7 to 11 s per image).
"""

from __future__ import annotations

import os

import torch


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, which containers and `taskset` narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def share_cpu_cores(workers: int) -> int:
    """Training: leave one core per DataLoader worker and give torch the rest; returns torch's thread count.

    torch's default (all cores) oversubscribes them once workers decode images in parallel: the toy
    training step went from 0.46 s on one free core to ~2 s when contended.
    """
    threads = max(1, available_cores() - max(0, workers))
    torch.set_num_threads(threads)
    return threads


def use_all_cores(processes: int = 1) -> int:
    """Evaluation and prediction: torch gets every available core (split evenly between `processes`
    ranks evaluating side by side); returns torch's thread count per process.

    The DataLoader workers are not subtracted: their per-image work is milliseconds against a forward of
    seconds (see the module docstring). Raises ValueError for processes < 1.
    """
    if processes < 1:
        raise ValueError(f"processes must be ≥ 1, got {processes}")
    threads = max(1, available_cores() // processes)
    torch.set_num_threads(threads)
    return threads
