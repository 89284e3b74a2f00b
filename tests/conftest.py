"""Shared fixtures: the embedded model (loaded once), small render settings, an isolated Prefect home."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("NO_MKDOCS_2_WARNING", "true")


@pytest.fixture(scope="session")
def lite0():
    from featvis_core import load_model

    return load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def tiny():
    """A render config small enough for CPU tests: 48 px, 24 steps, few frames, no magnification."""
    from featvis_core import preset

    return preset("fast", size=48, steps=24, frames=6, lr=0.1, augment={"zoom": 1.0})


ROOT = Path(__file__).resolve().parents[1]
FEATVIS = [sys.executable, "-m", "featvis_pipeline.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """One real `prefect server start` on loopback for the whole session (flows, CLI runs, deployments
    all talk to it), with its own PREFECT_HOME. Starting it once beats a temporary server per run."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_API_URL": ""}
    env.pop("PREFECT_API_URL")
    log = open(home / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    import httpx

    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise RuntimeError(f"prefect server exited: {(home / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    else:
        server.kill()
        raise RuntimeError("prefect server did not become healthy in 180 s")
    previous = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "PREFECT_HOME")}
    os.environ.update({"PREFECT_API_URL": url, "PREFECT_HOME": str(home)})
    yield url
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.terminate()
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        server.kill()


TINY_JOB = """
defaults:
  store: {store}
  preset: fast
  overrides: {{size: 48, steps: 8, frames: 4, augment: {{zoom: 1.0}}}}
  batch: {batch}
  retries: 0
jobs:
  tiny:
    model: efficientnet_lite0
    layers: {{blocks.4: 0-2, blocks.10: [5, 6]}}
    logits: [hen, 12]
    scores: false
{extra}
"""


@pytest.fixture
def tiny_flows(tmp_path):
    """Write a tiny flows.yaml (7 units, 48 px, 8 steps) into tmp_path and return its path."""

    def make(batch: int = 4, extra: str = "", store: Path | None = None) -> Path:
        path = tmp_path / "flows.yaml"
        path.write_text(TINY_JOB.format(store=store or tmp_path / "store", batch=batch, extra=extra))
        return path

    return make


def featvis(*args: str, cwd: Path = ROOT, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the featvis command line in a subprocess (as a user would)."""
    return subprocess.run([*FEATVIS, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium for one test module (Playwright)."""
    from browsing import ARGS, CHROMIUM

    if not Path(CHROMIUM).exists():
        pytest.fail("needs Debian's chromium at /usr/bin/chromium: run `make browser`")
    import playwright.sync_api as playwright_api

    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(request, browser):
    """A fresh page (the module's VIEWPORT, else 1360 x 900) that fails its test on any console error,
    page error or failed request."""
    from browsing import Watched

    viewport = getattr(request.module, "VIEWPORT", {"width": 1360, "height": 900})
    context = browser.new_context(viewport=viewport)
    watched = Watched(context.new_page())
    yield watched
    context.close()
    assert watched.problems == [], "\n".join(watched.problems)


@pytest.fixture
def no_server(monkeypatch):
    """Starting a Prefect server or a flow fails the test: every check of input must come before."""
    import featvis_pipeline.flows as flows
    import featvis_pipeline.server as server

    def forbidden(*args, **kwargs):
        raise AssertionError("a Prefect server or flow was started before the input was checked")

    monkeypatch.setattr(server, "prefect_api", forbidden)
    monkeypatch.setattr(flows, "run_job", forbidden)
    monkeypatch.setattr(flows, "atlas", forbidden)
