"""Fault injection for the fault-tolerance tests (tests/test_faults_*.py); inert unless asked for.

    FEATVIS_FAULT=POINT:N[,POINT:N...]

makes the process SIGKILL itself the N-th time (counted per process, all threads together) it reaches
POINT, so a test can kill a `featvis run` at an exact, reproducible moment. The variable is read once, at
import; when it is unset `hit()` returns at once. Dask or Ray worker processes inherit the variable and
count on their own. Points:
"""

from __future__ import annotations

import os
import signal
import threading

POINTS = {
    "render": "a tile (or half of one, after an out-of-memory split) starts its optimisation",
    "unit-files": "a unit's media files are in its temporary folder, meta.json is not written yet",
    "unit-rename": "a unit's temporary folder is complete with meta.json, not yet renamed into place",
    "unit-replace": "a corrupt unit was moved aside, its re-render is not yet renamed into place",
    "manifest-write": "a manifest's temporary file is written and flushed, not yet renamed over the manifest",
}
__doc__ += "".join(f"\n    {name:<15} {what}" for name, what in POINTS.items()) + "\n"


def _parse(text: str) -> dict[str, int]:
    plan: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        point, _, count = item.partition(":")
        if point not in POINTS or not count.isdigit() or int(count) < 1:
            raise ValueError(f"FEATVIS_FAULT: bad item {item!r}: expected POINT:N (N >= 1), POINT one of "
                             f"{', '.join(POINTS)}")
        plan[point] = int(count)
    return plan


_plan = _parse(os.environ.get("FEATVIS_FAULT", "")) or None
_seen: dict[str, int] = {}
_lock = threading.Lock()


def armed() -> bool:
    """Whether any fault point is planned in this process."""
    return _plan is not None


def hit(point: str) -> None:
    """Kill this process with SIGKILL if this is the planned occurrence of `point`."""
    if _plan is None or point not in _plan:
        return
    with _lock:
        _seen[point] = _seen.get(point, 0) + 1
        if _seen[point] == _plan[point]:
            os.kill(os.getpid(), signal.SIGKILL)
