"""Keep freed CPU tensor memory in the process instead of handing it back to the kernel at every step.

glibc serves large allocations from fresh mmap'd pages and unmaps them on free. A render step's
activation maps are large (16 x 96 x 112 x 112 bf16 is 38 MB), so without this every step page-faults
and zero-fills all of them again: on this project's 2-core Xeon that was a quarter of a render step
(bench/README.md). Raising glibc's mmap threshold to its maximum (32 MB) and switching off heap trimming
keeps the memory for reuse, which is what jemalloc or tcmalloc under LD_PRELOAD, the usual advice for
PyTorch on CPU, would do, without asking users to preload anything.
"""

from __future__ import annotations

import ctypes
import functools
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt parameter numbers
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling on 64-bit systems
KEEP = 1 << 30  # release heap memory to the kernel only beyond 1 GB of free space at the top


@functools.cache
def keep_freed_memory() -> bool:
    """Tune glibc's allocator once per process; False where there is no glibc (macOS, musl, Windows)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX), (M_TRIM_THRESHOLD, KEEP), (M_TOP_PAD, 64 << 20))
    return all(mallopt(option, value) == 1 for option, value in settings)
