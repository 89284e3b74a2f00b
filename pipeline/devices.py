"""Which device a worker renders on: one worker per GPU, or a configurable number on the CPU.

Thread workers take GPUs round-robin the first time they render and keep theirs (thread-local), so a
thread pool of `len(GPUs)` workers puts exactly one worker on each GPU. A Dask-CUDA worker sees one GPU
(its CUDA_VISIBLE_DEVICES), which it then finds as cuda:0.
"""

from __future__ import annotations

import itertools
import os
import threading

import torch

_local = threading.local()
_counter = itertools.count()
_lock = threading.Lock()


def gpu_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def worker_count(requested: int | None) -> int:
    """Workers for a thread runner: one per GPU, else `requested` (default: 1, all cores to it)."""
    return gpu_count() or requested or 1


def cpu_threads(workers: int) -> int:
    """Torch threads per CPU worker so that workers together use every core once."""
    return max(1, (os.cpu_count() or 1) // workers)


def current() -> torch.device:
    """This worker's device, assigned on first use."""
    device = getattr(_local, "device", None)
    if device is None:
        count = gpu_count()
        with _lock:
            index = next(_counter)
        device = torch.device(f"cuda:{index % count}") if count else torch.device("cpu")
        _local.device = device
    return device
