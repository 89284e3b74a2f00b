"""A temporary Prefect server that never outlives the run that started it.

Without PREFECT_API_URL, Prefect starts a temporary server (uvicorn) as a child process and stops it at
interpreter exit; a run killed with SIGKILL (or one whose exit handlers never ran) leaves that server behind.
`featvis run` therefore starts the same server itself, the way Prefect does, but as a child that the Linux
kernel kills when its parent dies (PR_SET_PDEATHSIG), points Prefect at it, and stops it when the run ends,
however it ends. With PREFECT_API_URL set (a real server), nothing is started.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator

from featvis_core import FeatvisError

# Runs in the child before uvicorn: die with the parent (and at once if it is already gone).
_GUARD = (
    "import ctypes, os, signal, sys, runpy\n"
    "if sys.platform.startswith('linux'):\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG\n"
    "    if os.getppid() != int(sys.argv[1]): os._exit(0)\n"
    "sys.argv = ['uvicorn', *sys.argv[2:]]\n"
    "runpy.run_module('uvicorn', run_name='__main__')\n"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _command(port: int) -> list[str]:
    """Prefect's own temporary-server command line (prefect.server.api.server.SubprocessASGIServer)."""
    import prefect

    return [sys.executable, "-c", _GUARD, str(os.getpid()), "--app-dir", str(prefect.__module_path__.parent),
            "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "error", "--lifespan", "on"]


def _drain_prefect(timeout: float = 5.0) -> None:
    """Send Prefect's queued logs and events while the server still listens (else, at exit, its workers
    retry against a closed port for a minute)."""
    try:
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        for worker in (APILogWorker, EventsWorker):
            worker.drain_all(timeout=timeout)
    except Exception:  # noqa: BLE001 - best effort: what is not sent is only telemetry of a finished run
        pass


@contextmanager
def prefect_api(timeout: float | None = None) -> Iterator[str | None]:
    """Yield the API URL of this run's Prefect server: the configured one, else a temporary child server."""
    import httpx
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, \
        get_current_settings, temporary_settings

    if PREFECT_API_URL.value():
        yield PREFECT_API_URL.value()
        return
    port = _free_port()
    env = {**os.environ, **get_current_settings().to_environment_variables(exclude_unset=True),
           "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
    log = tempfile.TemporaryFile()  # a file, not a pipe: a chatty server can never block on a full pipe
    server = subprocess.Popen(_command(port), env=env, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + (timeout or PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
        while True:
            if server.poll() is not None:
                log.seek(0)
                tail = log.read().decode(errors="replace").strip()
                raise FeatvisError(f"the temporary Prefect server exited ({server.returncode}): "
                                   f"{tail.splitlines()[-1] if tail else 'no message'}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise FeatvisError("the temporary Prefect server did not start in time; start one with "
                                   "`prefect server start` and set PREFECT_API_URL")
            time.sleep(0.2)
        previous = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = url  # for worker processes (Dask, Ray) the runner starts
        try:
            with temporary_settings({PREFECT_API_URL: url}):
                yield url
        finally:
            if previous is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = previous
    finally:
        _drain_prefect()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
