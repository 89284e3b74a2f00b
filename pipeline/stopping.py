"""Stopping is a user action, not a fault: Ctrl-C (SIGINT) or SIGTERM ends a run within a step or two.

The first signal sets a process-wide flag and raises `Stopped` in the main thread. Every optimisation checks
the flag between steps through the renderer's `on_step` callback (`check`), so a tile in a worker thread
abandons its units within one step instead of running to its end; the flow cancels tiles not yet started,
records what finished, leaves the rest pending in the manifest and returns; the command exits 130 (SIGINT)
or 143 (SIGTERM). A second signal while stopping raises again at once. Worker processes (Dask, Ray) do not
see the flag: their cluster is closed when the flow's task runner exits.
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator

_stop = threading.Event()
_signal: list[int] = []
NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class Stopped(BaseException):
    """A stop was asked (a BaseException, like KeyboardInterrupt: no `except Exception` swallows it)."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(f"stopped by {NAMES.get(signum, signum)}")
        self.signum = signum


def request(signum: int) -> None:
    """Ask every optimisation in this process to stop."""
    if not _signal:
        _signal.append(int(signum))
    _stop.set()


def requested() -> int | None:
    """The signal that asked for a stop (None: no stop asked)."""
    return _signal[0] if _stop.is_set() and _signal else None


def check(*_: Any) -> None:
    """Raise `Stopped` when a stop was asked: the `on_step` hook of every optimisation."""
    if _stop.is_set():
        raise Stopped(requested() or signal.SIGINT)


def exit_code(signum: int) -> int:
    return 128 + int(signum)


def reset() -> None:
    """Forget a stop (tests, and a process that runs again after stopping)."""
    _stop.clear()
    _signal.clear()


def _handler(signum: int, _frame: Any) -> None:
    first = not _stop.is_set()
    request(signum)
    if first:
        print(f"featvis: stopping ({NAMES.get(signum, signum)}): abandoning the units in hand, "
              "the rest stay pending", file=sys.stderr, flush=True)
    raise Stopped(signum)


@contextmanager
def on_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into `Stopped` for the duration (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
