"""Stopping is a user action (issue 13, item 6): `featvis run` stops promptly on SIGTERM and on Ctrl-C (SIGINT),
exits 143 / 130 with one line, records what it finished and leaves the rest pending, and the next run renders
exactly the rest. However a run ends, even by SIGKILL, its temporary Prefect server (uvicorn) does not outlive
it. These runs use the temporary server on purpose (no PREFECT_API_URL). How long each stop took is printed
(pytest -s), never asserted: the machine is shared.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import FEATVIS, ROOT

pytestmark = pytest.mark.slow

JOB = """
defaults:
  store: {store}
  preset: fast
  overrides: {{size: 48, steps: 300, frames: 4, augment: {{zoom: 1.0}}}}
  batch: 2
  retries: 0
jobs:
  tiny:
    model: efficientnet_lite0
    layers: {{blocks.4: 0-3, blocks.10: [5, 6]}}
    scores: false
"""
UNITS = 6
LOG: list[str] = []


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A PREFECT_HOME of their own and no PREFECT_API_URL: each run starts its temporary server."""
    return tmp_path_factory.mktemp("prefect-temporary")


def start(flows: Path, home: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "FEATVIS_FAULT")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="300")
    return subprocess.Popen([*FEATVIS, "run", "tiny", "--flows", str(flows)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def alive_in_session(session: int) -> list[str]:
    """Processes of a session that are still running (zombies, already dead, do not count)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(f"{entry.name}: {cmdline[:120]}")
    return found


def wait_gone(session: int, limit: float = 60) -> list[str]:
    """Wait (a hang guard, not a timing assertion) for the session's processes to end; return the survivors."""
    deadline = time.monotonic() + limit
    while (left := alive_in_session(session)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def metas(store: Path) -> dict[str, tuple[int, int]]:
    return {str(p.parent.relative_to(store)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in store.rglob("meta.json") if not any(part.startswith(".") for part in p.parts)}


def manifest(store: Path) -> dict:
    return json.loads((store / "manifests" / "tiny.json").read_text())


def wait_for_units(process: subprocess.Popen, store: Path, count: int) -> None:
    while len(metas(store)) < count and process.poll() is None:
        time.sleep(0.1)


def test_sigterm_and_ctrl_c_stop_the_run_and_the_next_run_goes_on(home, tmp_path):
    store = tmp_path / "store"
    flows = tmp_path / "flows.yaml"
    flows.write_text(JOB.format(store=store))
    before: dict[str, tuple[int, int]] = {}
    for signum, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        process = start(flows, home)
        wait_for_units(process, store, len(before) + 1)  # the flow is rendering: a unit was just written
        sent = time.monotonic()
        process.send_signal(signum)
        out, err = process.communicate(timeout=600)
        LOG.append(f"{signal.Signals(signum).name}: exit {process.returncode} "
                   f"{time.monotonic() - sent:.1f} s after the signal")
        assert process.returncode == code, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        assert out.strip().splitlines()[-1].startswith(f"tiny: stopped by {'SIGTERM' if code == 143 else 'Ctrl-C'}: ")
        assert wait_gone(process.pid) == [], "a process of the run outlived it"
        now = metas(store)
        assert {k: now[k] for k in before} == before, "a finished unit was rendered again"
        data = manifest(store)
        states = {u["path"]: u["state"] for u in data["units"]}
        assert {p for p, s in states.items() if s == "done"} == set(now), "the manifest disagrees with the store"
        assert set(states.values()) <= {"done", "pending"} and len(now) < UNITS, states
        assert not [p for p in store.rglob("*") if p.name.endswith(".tmp")], "a stopped run left partial files"
        before = now
    process = start(flows, home)
    out, err = process.communicate(timeout=900)
    assert process.returncode == 0, err[-3000:]
    assert f"{UNITS - len(before)} rendered, {len(before)} cached, 0 failed" in out
    assert {k: v for k, v in metas(store).items() if k in before} == before
    assert manifest(store)["counts"] == {"done": UNITS, "pending": 0, "failed": 0}
    assert wait_gone(process.pid) == []
    print("\n" + "\n".join(LOG))


def test_no_server_outlives_a_killed_run(home, tmp_path):
    store = tmp_path / "store"
    flows = tmp_path / "flows.yaml"
    flows.write_text(JOB.format(store=store))
    process = start(flows, home)
    while not (store / "manifests" / "tiny.json").exists() and process.poll() is None:
        time.sleep(0.1)  # the flow has begun: the temporary server is up
    servers = [p for p in alive_in_session(process.pid) if "uvicorn" in p or "runpy" in p]
    assert servers, alive_in_session(process.pid)
    process.kill()
    process.communicate(timeout=60)
    assert wait_gone(process.pid) == [], "the temporary Prefect server outlived a run killed with SIGKILL"
