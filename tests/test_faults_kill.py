"""Killed runs and concurrent runs: `featvis run` killed with SIGKILL at chosen and at random points, then
resumed; two runs on one store at once. The invariants, after every kill:

* nothing a killed run finished is rendered again (meta.json keeps its inode and mtime through the reruns);
* nothing partial is visible to the site: every unit folder not hidden is complete and verifies, every
  manifest not hidden is valid JSON (partial writes live only in hidden `.…tmp` names);
* the resumed job completes, leaves no temporary file behind, and its manifest equals an uninterrupted
  run's (same units, keys, states, paths; same image.png for the same seed).

Planned kill points use the FEATVIS_FAULT hook (pipeline/faults.py); unplanned ones kill the process from
outside after a seeded random delay once its flow has begun.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import FEATVIS, ROOT

pytestmark = pytest.mark.slow

# fp32: a resumed run renders the rest in smaller tiles, and bf16 convolutions round differently for
# another batch size (up to 6/255 after 8 steps); in fp32 a unit's image does not depend on its batch.
JOB = """
defaults:
  store: {store}
  preset: fast
  overrides: {{size: 48, steps: 8, frames: 4, precision: fp32}}
  batch: 2
  retries: 0
jobs:
  tiny:
    model: efficientnet_lite0
    layers: {{blocks.4: 0-3, blocks.10: [5, 6, 7, 8]}}
    logits: [hen, 12, 100, 200]
    scores: false
"""
UNITS = 12
MODEL = "efficientnet_lite0"
KILL_LOG: list[str] = []  # what each kill did, printed at the end (pytest -s) for the report


def write_job(folder: Path, store: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "flows.yaml"
    path.write_text(JOB.format(store=store))
    return path


def start(flows: Path, fault: str | None = None) -> subprocess.Popen:
    env = {**os.environ}
    env.pop("FEATVIS_FAULT", None)
    if fault:
        env["FEATVIS_FAULT"] = fault
    return subprocess.Popen([*FEATVIS, "run", "tiny", "--flows", str(flows)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    _wait_for_orphans(process.pid)
    return process.returncode, out, err


def _wait_for_orphans(session: int, timeout: float = 30) -> None:
    """A kill -9 leaves the run's children (an ffmpeg encoding a video) to finish on their own: wait for
    them so the next run does not race a dying encoder."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(session, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def manifest(store: Path) -> dict:
    return json.loads((store / "manifests" / "tiny.json").read_text())


def unit_folders(store: Path) -> list[Path]:
    """Unit folders a reader can see (hidden names are partial writes, by the store's format)."""
    root = store / MODEL
    if not root.exists():
        return []
    return sorted(unit for layer in root.iterdir() if layer.is_dir() and not layer.name.startswith(".")
                  for unit in layer.iterdir() if not unit.name.startswith(".") and not unit.name.endswith(".tmp"))


def finished(store: Path) -> dict[str, tuple[int, int]]:
    """Finished units: folder -> (inode, mtime) of its meta.json."""
    found = {}
    for unit in unit_folders(store):
        stat = (unit / "meta.json").stat()
        found[str(unit.relative_to(store))] = (stat.st_ino, stat.st_mtime_ns)
    return found


def check_visible(store: Path) -> None:
    """What a reader (the site) can see is never partial."""
    from featvis_pipeline.store import Store

    s = Store(store)
    for unit in unit_folders(store):
        relative = str(unit.relative_to(store))
        assert (unit / "meta.json").exists(), f"{relative}: visible unit folder without meta.json"
        assert s.problems(relative) == [], f"{relative}: {s.problems(relative)}"
    for path in (store / "manifests").glob("*") if (store / "manifests").exists() else []:
        if not path.name.startswith("."):
            assert path.suffix == ".json", path
            json.loads(path.read_text())  # a visible manifest is always whole
    if (store / "manifests" / "tiny.json").exists():
        from featvis_site.store_reader import read_store

        for unit in read_store(store).units:  # the site publishes only what verifies
            if unit.published:
                assert s.problems(unit.path) == [], unit.path


def temporaries(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.name.endswith(".tmp"))


def png_digests(store: Path) -> dict[str, str]:
    return {u["unit"]: hashlib.sha256((store / u["path"] / "image.png").read_bytes()).hexdigest()
            for u in manifest(store)["units"]}


def comparable(data: dict) -> list[tuple]:
    return [(u["unit"], u["key"], u["state"], u["path"], u["error"]) for u in data["units"]]


def same_images(store: Path, reference: Path) -> str:
    """'bitwise' when every image.png equals the reference's byte for byte, 'within 2/255' when the decoded
    pixels differ by at most 2 levels (float nondeterminism of a different batch), else it fails."""
    mine, theirs = png_digests(store), png_digests(reference)
    if mine == theirs:
        return "bitwise"
    worst = 0
    for unit in manifest(store)["units"]:
        a = np.asarray(Image.open(store / unit["path"] / "image.png"), dtype=np.int16)
        b = np.asarray(Image.open(reference / unit["path"] / "image.png"), dtype=np.int16)
        worst = max(worst, int(np.abs(a - b).max()))
        assert worst <= 2, f"{unit['unit']}: pixels differ by {worst}/255 from the uninterrupted run"
    return f"within {worst}/255"


def wait_for_flow(process: subprocess.Popen, store: Path) -> float:
    """Wait until the run's flow has begun (it writes its first manifest); return the time it did."""
    marker = store / "manifests" / "tiny.json"
    before = marker.stat().st_mtime_ns if marker.exists() else 0
    while process.poll() is None:
        if marker.exists() and marker.stat().st_mtime_ns != before:
            break
        time.sleep(0.05)
    return time.time()


FLOW_SECONDS: list[float] = []  # from the uninterrupted run's first manifest to its last unit: where kills aim


@pytest.fixture(scope="module")
def reference(prefect_server, tmp_path_factory) -> Path:
    """An uninterrupted run of the job: what every interrupted one must end up equal to."""
    folder = tmp_path_factory.mktemp("reference")
    flows = write_job(folder, folder / "store")
    process = start(flows)
    began = wait_for_flow(process, folder / "store")
    code, out, err = finish(process)
    assert code == 0, err[-3000:]
    FLOW_SECONDS.append(max(p.stat().st_mtime for p in (folder / "store").rglob("meta.json")) - began)
    assert f"{UNITS} rendered, 0 cached, 0 failed" in out
    return folder / "store"


class Chain:
    """Runs of one store, each checked against what was finished before it."""

    def __init__(self, folder: Path):
        self.store = folder / "store"
        self.flows = write_job(folder, self.store)
        self.done = finished(self.store)
        self.exempt: set[str] = set()  # units the test itself corrupted: they must be redone

    def after_run(self, what: str, code: int, err: str) -> None:
        now = finished(self.store)
        kept = {k: v for k, v in self.done.items() if k not in self.exempt}
        lost = [k for k, v in kept.items() if now.get(k) != v]
        assert not lost, f"{what}: finished units were rendered again or lost: {lost}"
        assert "Traceback" not in err or code == -signal.SIGKILL, err[-3000:]
        check_visible(self.store)
        KILL_LOG.append(f"{what}: exit {code}, finished {len(kept)} -> {len(now)} units, "
                        f"{len(temporaries(self.store))} hidden partial file(s), lost 0")
        self.done, self.exempt = now, set()

    def killed_at(self, fault: str) -> None:
        code, _, err = finish(start(self.flows, fault))
        assert code == -signal.SIGKILL, f"{fault}: the run was not killed (exit {code}): {err[-3000:]}"
        self.after_run(f"FEATVIS_FAULT={fault}", code, err)

    def killed_from_outside(self, rng: random.Random) -> None:
        """SIGKILL at a random moment while the rest of the job renders and writes (its expected span: the
        reference run's, for the units still to render; the kill lands within its first 80 %)."""
        process = start(self.flows)
        wait_for_flow(process, self.store)
        delay = rng.uniform(0.0, 0.8) * FLOW_SECONDS[0] * (UNITS - len(self.done)) / UNITS
        time.sleep(delay)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        code, _, err = finish(process)
        self.after_run(f"kill -9 from outside {delay:.2f} s after the flow began", code, err)


def test_killed_runs_resume_without_losing_or_redoing_anything(reference, tmp_path):
    chain = Chain(tmp_path)
    chain.killed_at("manifest-write:1")  # first manifest half-written: nothing rendered, no manifest visible
    assert not (chain.store / "manifests" / "tiny.json").exists() and not chain.done
    chain.killed_at("render:2")  # tile 1 written, dies as tile 2 starts its optimisation
    assert len(chain.done) == 2
    chain.killed_at("unit-files:2")  # one unit of the tile written, the next one's media half there
    assert len(chain.done) == 3 and temporaries(chain.store)
    chain.killed_at("unit-rename:1")  # a complete unit in its temporary folder, not yet renamed
    assert len(chain.done) == 3
    chain.killed_at("manifest-write:3")  # two tiles done, dies writing the manifest after the second
    assert len(chain.done) == 6
    json.loads((chain.store / "manifests" / "tiny.json").read_text())  # the previous manifest is intact

    # a corrupt unit is re-rendered; kill between moving the bad copy aside and renaming the new one in
    victim = sorted(chain.done)[0]
    (chain.store / victim / "image.png").write_bytes(b"\x89PNG truncated")
    chain.exempt.add(victim)
    chain.killed_at("unit-replace:1")
    assert victim not in chain.done

    rng = random.Random(6)
    for _ in range(3):
        if len(chain.done) < UNITS:
            chain.killed_from_outside(rng)

    code, out, err = finish(start(chain.flows))
    assert code == 0, err[-3000:]
    cached = len(chain.done)
    assert f"{UNITS - cached} rendered, {cached} cached, 0 failed" in out or (
        cached == UNITS and f"all {UNITS} units are cached" in out), out
    chain.after_run("final run", code, err)
    assert len(chain.done) == UNITS
    assert temporaries(chain.store) == [], "a killed run's partial files survived the resumed run"
    mine, theirs = manifest(chain.store), manifest(reference)
    assert mine["counts"] == theirs["counts"] == {"done": UNITS, "pending": 0, "failed": 0}
    assert comparable(mine) == comparable(theirs)
    assert mine["settings"] == theirs["settings"]
    KILL_LOG.append(f"final manifest equals the uninterrupted run's; image.png {same_images(chain.store, reference)}")
    print("\n" + "\n".join(KILL_LOG))


def test_two_runs_at_once_render_every_unit_once(reference, tmp_path):
    flows = write_job(tmp_path, tmp_path / "store")
    first, second = start(flows), start(flows)
    results = [finish(first), finish(second)]
    rendered = 0
    for code, out, err in results:
        assert code == 0, f"exit {code}: {err[-3000:]}"
        assert "Traceback" not in err, err[-3000:]
        match = re.search(r"(\d+) rendered, (\d+) cached, 0 failed", out)
        assert match or f"all {UNITS} units are cached" in out, out
        rendered += int(match[1]) if match else 0
    assert rendered == UNITS, f"{rendered} renders for {UNITS} units: some unit was rendered twice"
    store = tmp_path / "store"
    assert len(unit_folders(store)) == UNITS
    check_visible(store)
    assert temporaries(store) == []
    data = manifest(store)
    assert data["counts"] == {"done": UNITS, "pending": 0, "failed": 0}, data["counts"]
    assert comparable(data) == comparable(manifest(reference))
    print(f"\ntwo concurrent runs: renders {[r[1].strip().splitlines()[-1] for r in results]}; "
          f"image.png {same_images(store, reference)}")
