"""The store: atomic units, checksums, sweeping after a kill, locks across processes."""

import json
import multiprocessing
import os
import subprocess
import sys

import pytest

from featvis_pipeline.store import Store, temporary_name


K1 = "1" * 64
UNIT = f"m/l/c0001@{K1[:12]}"
ROLES = {"image.png": "image", "image.webp": "image_web", "thumb.webp": "thumb", "anim.mp4": "mp4"}
FILES = {"image.png": b"png", "image.webp": b"webp", "thumb.webp": b"thumb", "anim.mp4": b"mp4"}


def fill_with(files: dict[str, bytes], fail_after: int | None = None):
    def fill(folder):
        for i, (name, data) in enumerate(files.items()):
            if fail_after is not None and i == fail_after:
                raise OSError("No space left on device")
            (folder / name).write_bytes(data)
        return {"schema": 1, "key": K1, "status": "done", "files": {ROLES[name]: name for name in files}}

    return fill


def test_unit_appears_complete_with_checksums(tmp_path):
    store = Store(tmp_path)
    meta = store.write_unit(UNIT, fill_with(FILES))
    assert meta["files"]["image"]["bytes"] == 3 and len(meta["files"]["mp4"]["sha256"]) == 64
    assert store.is_done(UNIT, K1, verify=True)
    assert not store.is_done(UNIT, "2" * 64)
    assert json.loads((tmp_path / UNIT / "meta.json").read_text())["key"] == K1


def test_failed_write_leaves_nothing(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(OSError, match="No space"):
        store.write_unit(UNIT, fill_with(FILES, fail_after=1))
    assert list((tmp_path / "m/l").iterdir()) == []


@pytest.mark.parametrize("damage, problem", [
    (lambda d: (d / "image.png").write_bytes(b"pn"), "image.png has 2 bytes, expected 3"),
    (lambda d: (d / "anim.mp4").unlink(), "anim.mp4 is missing"),
    (lambda d: (d / "meta.json").write_text("{garbled"), "meta.json is not valid JSON"),
    (lambda d: (d / "image.png").write_bytes(b"PNG"), "image.png does not match its checksum"),
    (lambda d: (d / "meta.json").unlink(), "meta.json is missing"),
])
def test_corruption_is_named(tmp_path, damage, problem):
    store = Store(tmp_path)
    store.write_unit(UNIT, fill_with(FILES))
    damage(tmp_path / UNIT)
    assert problem in store.problems(UNIT)
    assert not store.is_done(UNIT, K1, verify=True)


def test_rewriting_a_corrupt_unit_replaces_it(tmp_path):
    store = Store(tmp_path)
    store.write_unit(UNIT, fill_with(FILES))
    (tmp_path / UNIT / "image.png").write_bytes(b"bad")
    store.write_unit(UNIT, fill_with(FILES))
    assert store.problems(UNIT) == []
    assert sorted(p.name for p in (tmp_path / "m/l").iterdir()) == [UNIT.rsplit("/", 1)[1]]


def test_sweep_removes_only_dead_writers_leftovers(tmp_path):
    store = Store(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_name = temporary_name("c0001@k1").replace(f"~{os.getpid()}~", f"~{dead.stdout.strip()}~")
    (tmp_path / dead_name).mkdir()
    (tmp_path / dead_name / "image.png").write_bytes(b"partial")
    live = tmp_path / temporary_name("c0002@k2")
    live.mkdir()
    assert store.sweep() == 1
    assert not (tmp_path / dead_name).exists() and live.exists()


def _hold_lock(root, key, ready, release):
    with Store(root).lock_units([key]) as held:
        assert held == [key]
        ready.set()
        release.wait(30)


def test_unit_locks_exclude_other_processes(tmp_path):
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    other = multiprocessing.Process(target=_hold_lock, args=(tmp_path, "a" * 64, ready, release))
    other.start()
    try:
        assert ready.wait(30)
        with Store(tmp_path).lock_units(["a" * 64, "b" * 64]) as held:
            assert held == ["b" * 64]
    finally:
        release.set()
        other.join(30)
    with Store(tmp_path).lock_units(["a" * 64]) as held:
        assert held == ["a" * 64]


def test_store_that_is_a_file(tmp_path):
    from featvis_core import FeatvisError

    (tmp_path / "f").write_text("x")
    with pytest.raises(FeatvisError, match="is a file"):
        Store(tmp_path / "f")
