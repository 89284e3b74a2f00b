"""Full disks and read-only stores (issue 19, item 2.6).

* The store is checked writable (a probe file written, flushed, removed) before the flow starts and before
  any Prefect server: a read-only store, or one full from the start, is one line and exit status 1.
  Simulated with a real tmpfs mounted read-only or filled up, where this machine lets the tests mount one
  (as root), and with a monkeypatched probe everywhere.
* A disk that fills up during a run: the unit whose write failed is recorded failed with its reason, the
  units that landed are done (never pending), the manifest is saved again at the end, and what cannot be
  saved is one line; no traceback, from us or from Prefect.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import TINY_JOB
from featvis_pipeline.cli import main


def one_line(capfd, code: int, phrase: str) -> str:
    captured = capfd.readouterr()
    assert code == 1, (code, captured.err[-2000:])
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("featvis: error: ") and "Traceback" not in captured.err, captured.err
    assert phrase in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def tmpfs(tmp_path):
    """A 256 kB tmpfs at tmp_path/mnt, or a skip where this machine does not let the tests mount one."""
    point = tmp_path / "mnt"
    point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(point)], capture_output=True)
    if result.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode(errors='replace').strip()}")
    yield point
    subprocess.run(["umount", "-l", str(point)], check=False)


def flows_for(tmp_path: Path, store: Path) -> Path:
    flows = tmp_path / "flows.yaml"
    flows.write_text(TINY_JOB.format(store=store, batch=4, extra=""))
    return flows


def test_a_read_only_store_is_one_line_before_any_server(tmpfs, tmp_path, no_server, capfd):
    store = tmpfs / "store"
    store.mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    flows = flows_for(tmp_path, store)
    for argv in (["run", "tiny"], ["examples", "tiny"]):
        code = main([*argv, "--flows", str(flows)])
        if argv[0] == "examples":  # the tiny job has no extras: said first, before the store is looked at
            assert code == 2
            capfd.readouterr()
            continue
        one_line(capfd, code, "cannot be written: Read-only file system")
    assert main(["run", "tiny", "--dry-run", "--flows", str(flows)]) == 0  # a dry run writes nothing
    assert main(["status", "tiny", "--flows", str(flows)]) == 0
    capfd.readouterr()


def test_a_store_full_from_the_start_is_one_line_before_any_server(tmpfs, tmp_path, no_server, capfd):
    store = tmpfs / "store"
    store.mkdir()
    fd = os.open(tmpfs / "filler", os.O_WRONLY | os.O_CREAT)
    try:  # fill the file system up to its last block
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as error:
        assert error.errno == errno.ENOSPC
    finally:
        os.close(fd)
    flows = flows_for(tmp_path, store)
    one_line(capfd, main(["run", "tiny", "--flows", str(flows)]), "cannot be written: No space left on device")
    assert [p.name for p in store.iterdir()] == []  # the probe is gone too


def test_the_probe_refuses_any_write_error_and_leaves_nothing(tmp_path, no_server, capfd, monkeypatch):
    """Anywhere (no mount needed): the probe's write fails as a full or read-only disk would."""
    import featvis_pipeline.preflight as preflight

    real_write = os.write
    for code_, phrase in ((errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system"),
                          (errno.EACCES, "Permission denied"), (errno.EDQUOT, "Disk quota exceeded")):
        def failing(fd, data, code_=code_):
            raise OSError(code_, os.strerror(code_))

        monkeypatch.setattr(preflight.os, "write", failing)
        store = tmp_path / f"store-{code_}"
        flows = flows_for(tmp_path, store)
        one_line(capfd, main(["run", "tiny", "--flows", str(flows)]), f"cannot be written: {phrase}")
        assert list(store.iterdir()) == []
        monkeypatch.setattr(preflight.os, "write", real_write)
    preflight.check_writable(tmp_path / "fine" / "store")
    assert list((tmp_path / "fine" / "store").iterdir()) == []


# -- a disk that fills up during a run (real flows, a Prefect server) -------------------------------------


def manifest(store: Path) -> dict:
    return json.loads((store / "manifests" / "tiny.json").read_text())


@pytest.mark.slow
def test_a_disk_that_fills_during_a_run_fails_units_with_a_reason_and_no_traceback(prefect_server, tmp_path,
                                                                                     monkeypatch, capfd):
    import featvis_core.media as media
    import featvis_pipeline.store as store_module

    store = tmp_path / "store"
    flows = flows_for(tmp_path, store)
    real_mp4, real_manifest = media.write_mp4, store_module.Store.write_manifest
    state = {"units": 0, "full": False, "manifest_saves_refused": 0}
    lock = threading.Lock()

    def filling_mp4(path, frames, **kwargs):
        with lock:  # writer threads of several tiles
            if state["units"] >= 2:  # two units land, then the disk is full
                state["full"] = True
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            state["units"] += 1
        return real_mp4(path, frames, **kwargs)

    def full_manifest(self, job, data):
        if state["full"] and state["manifest_saves_refused"] < 2:  # full for a while, then space again
            state["manifest_saves_refused"] += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_manifest(self, job, data)

    monkeypatch.setattr(media, "write_mp4", filling_mp4)
    monkeypatch.setattr(store_module.Store, "write_manifest", full_manifest)
    code = main(["run", "tiny", "--flows", str(flows)])
    captured = capfd.readouterr()
    assert code == 1 and "Traceback" not in captured.err and "Traceback" not in captured.out, captured.err[-3000:]
    assert "tiny: 2 rendered, 0 cached, 5 failed" in captured.out, captured.out[-2000:]
    assert state["manifest_saves_refused"] == 2
    units = manifest(store)["units"]
    assert sorted(u["state"] for u in units) == ["done", "done"] + ["failed"] * 5  # none pending
    for unit in units:
        if unit["state"] == "failed":
            assert unit["error"] == "could not be written: No space left on device", unit
        else:
            assert (store / unit["path"] / "meta.json").is_file()

    monkeypatch.undo()
    assert main(["status", "tiny", "--flows", str(flows)]) == 0
    assert capfd.readouterr().out.splitlines()[0].startswith("tiny: 2/7 units done")


def test_a_manifest_that_cannot_be_saved_at_all_is_one_line(tmp_path, monkeypatch, capfd):
    """The disk stays full to the end: the run's summary says the manifest is behind, in one line, exit 1
    (the flow itself is stubbed: the test above runs the real one)."""
    import featvis_pipeline.flows as flows
    import featvis_pipeline.server as server
    from contextlib import nullcontext

    from featvis_pipeline.manifest import Manifest

    class FullStore:
        def write_manifest(self, job, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    manifest_ = Manifest.__new__(Manifest)
    manifest_.store, manifest_.to_dict, manifest_.plan = FullStore(), dict, type("P", (), {"job_name": "tiny"})
    problem = manifest_.try_save()
    assert problem == "the manifest could not be saved (No space left on device)"
    summary = {"stopped": None, "rendered": 2, "cached": 0, "failed": 5, "wall_s": 1.0, "units_per_s": 2.0,
               "manifest": "m", "manifest_error": problem}
    monkeypatch.setattr(server, "prefect_api", nullcontext)
    monkeypatch.setattr(flows, "run_job", lambda *a: summary)
    from featvis_pipeline.commands import _run_flow

    assert _run_flow("tiny", tmp_path / "flows.yaml", None) == (5, None)
    captured = capfd.readouterr()
    assert captured.err.splitlines() == ["featvis: error: tiny: the manifest could not be saved (No space left on "
                                         "device); featvis status reads the store itself"]
