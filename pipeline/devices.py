"""Which device a worker renders on: one worker per GPU, or a configurable number on the CPU.

Thread workers take GPUs round-robin the first time they render and keep theirs (thread-local), so a
thread pool of `len(GPUs)` workers puts exactly one worker on each GPU. A Dask-CUDA worker sees one GPU
(its CUDA_VISIBLE_DEVICES), which it then finds as cuda:0.
"""

from __future__ import annotations

import itertools
import os
import re
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


def resolve(name: str | None, option: str = "--device") -> torch.device:
    """The device a user named (cpu, cuda, cuda:N, mps), checked against this machine; the first GPU, else
    the CPU, when none was named. A FeatvisError names what is available instead of a torch traceback."""
    from featvis_core import FeatvisError

    if name is None:
        return torch.device("cuda" if gpu_count() else "cpu")
    match = re.fullmatch(r"(cpu|cuda|mps)(?::(\d{1,3}))?", name.strip().lower())
    if not match:
        raise FeatvisError(f"{option} {name!r}: expected cpu, cuda, cuda:N or mps")
    kind, index = match[1], int(match[2]) if match[2] else None
    if kind == "cuda":
        if not gpu_count():
            raise FeatvisError(f"{option} {name}: no CUDA GPU is available here (torch sees none); use {option} cpu")
        if index is not None and index >= gpu_count():
            raise FeatvisError(f"{option} {name}: this machine has {gpu_count()} GPU(s), cuda:0 to cuda:{gpu_count() - 1}")
    elif kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise FeatvisError(f"{option} {name}: Apple's MPS is not available here; use {option} cpu")
    elif kind == "cpu" and index not in (None, 0):
        raise FeatvisError(f"{option} {name}: there is one CPU device, cpu")
    return torch.device(kind if index is None else f"{kind}:{index}")
