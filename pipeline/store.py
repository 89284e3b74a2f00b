"""The on-disk artifact store (format: pipeline/STORE.md).

Every unit lives in its own folder named by a content key, and appears there all at once: its files are
written into a hidden temporary folder, checksummed into `meta.json` (written last), flushed, and the
folder is renamed into place. A reader therefore sees a unit complete or not at all, a killed run leaves
only a hidden `.tmp` folder (swept on the next run), and a finished unit is never redone. Unit-level file
locks keep two runs sharing a store from rendering the same unit at the same time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from filelock import FileLock, Timeout

from . import faults

META = "meta.json"
SCHEMA = 1


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's entries to disk (a rename is only durable once its folder is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_name(name: str) -> str:
    """Hidden name of a file or folder being written: its owner (host, pid) lets `Store.sweep` tell a
    live writer's work from a killed one's."""
    return f".{name}~{socket.gethostname()}~{os.getpid()}~{uuid.uuid4().hex[:8]}.tmp"


def write_json_atomic(path: Path, data: Any, fault: str = "") -> None:
    """Write JSON to a sibling temporary file, flush it to disk, then rename it over `path`.
    (`fault` names the fault-injection point just before the rename: pipeline/faults.py.)"""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / temporary_name(path.name)
    try:
        with open(temporary, "w") as handle:
            json.dump(data, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        if fault:
            faults.hit(fault)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def file_entry(folder: Path, relative: str) -> dict[str, Any]:
    path = folder / relative
    return {"path": relative, "sha256": sha256_file(path), "bytes": path.stat().st_size}


class Store:
    """A store rooted at `root`. Paths handed around are relative to the root (`model/layer/unit@key`)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            from featvis_core import FeatvisError

            raise FeatvisError(f"store {str(self.root)!r} is a file, not a folder")

    # -- reading ---------------------------------------------------------------------------------
    def unit_dir(self, relative: str) -> Path:
        return self.root / relative

    def read_meta(self, relative: str) -> dict[str, Any] | None:
        """A unit's meta.json, or None when the unit is absent or its meta is not a readable JSON object."""
        try:
            meta = json.loads((self.unit_dir(relative) / META).read_bytes())
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def is_done(self, relative: str, key: str, verify: bool = False) -> bool:
        """True when the unit's folder holds a readable meta.json for this key (and, with `verify`,
        every file matches its checksum)."""
        meta = self.read_meta(relative)
        if not meta or meta.get("key") != key or meta.get("status") != "done":
            return False
        return not verify or not self.problems(relative)

    def problems(self, relative: str) -> list[str]:
        """What is wrong with a finished unit's files, as readable phrases (empty when all is well).
        A malformed meta.json is a problem like any other, never an exception."""
        folder = self.unit_dir(relative)
        if not (folder / META).exists():
            return ["meta.json is missing"]
        try:
            meta = json.loads((folder / META).read_bytes())
        except OSError as error:
            return [f"meta.json cannot be read ({error.strerror})"]
        except ValueError:
            return ["meta.json is not valid JSON"]
        if not isinstance(meta, dict):
            return ["meta.json is not a JSON object"]
        files = meta.get("files")
        if not isinstance(files, dict):
            return ["meta.json has no valid 'files' mapping"]
        found, listed = [], 0
        for role, value in files.items():
            for entry in value if isinstance(value, list) else [value]:
                listed += 1
                if not _valid_entry(entry):
                    found.append(f"meta.json has a bad {role!r} file entry")
                    continue
                path = folder / entry["path"]
                if not _inside(path, folder):
                    found.append(f"meta.json: {role!r} path escapes the unit folder")
                elif not path.is_file():
                    found.append(f"{entry['path']} is missing")
                elif path.stat().st_size != entry["bytes"]:
                    found.append(f"{entry['path']} has {path.stat().st_size} bytes, expected {entry['bytes']}")
                elif sha256_file(path) != entry["sha256"]:
                    found.append(f"{entry['path']} does not match its checksum")
        return found if listed else ["meta.json lists no files"]

    # -- writing ---------------------------------------------------------------------------------
    def write_unit(self, relative: str, fill: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        """Create a unit atomically. `fill(folder)` writes the unit's files into a temporary folder and
        returns its meta (without `files`); checksums are added and meta.json is written last."""
        final = self.unit_dir(relative)
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.parent / temporary_name(final.name)
        temporary.mkdir()
        try:
            meta = fill(temporary)
            names = sorted(p.relative_to(temporary).as_posix() for p in temporary.rglob("*") if p.is_file())
            meta["files"] = _describe(temporary, meta.get("files", {}), names)
            for name in names:
                _fsync(temporary / name)
            faults.hit("unit-files")
            write_json_atomic(temporary / META, meta)
            _fsync(temporary)
            faults.hit("unit-rename")
            self._replace(temporary, final)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        return meta

    def _replace(self, temporary: Path, final: Path) -> None:
        """Rename the finished folder into place; an old (corrupt) copy is moved aside first."""
        if final.exists():
            trash = final.parent / f".{final.name}~trash~{uuid.uuid4().hex[:8]}.tmp"
            os.rename(final, trash)
            faults.hit("unit-replace")
            os.rename(temporary, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(temporary, final)
        _fsync(final.parent)

    def remove_unit(self, relative: str) -> None:
        folder = self.unit_dir(relative)
        if folder.exists():
            trash = folder.parent / f".{folder.name}~trash~{uuid.uuid4().hex[:8]}.tmp"
            os.rename(folder, trash)
            shutil.rmtree(trash, ignore_errors=True)

    def sweep(self) -> int:
        """Delete temporary folders and files left by killed writers on this host; returns how many."""
        host, removed = socket.gethostname(), 0
        if not self.root.exists():
            return 0
        for path in list(self.root.rglob(".*~*.tmp")):
            owner = path.name[:-4].split("~")[1:3]
            if owner[0] == "trash" or (owner[0] == host and not _pid_alive(owner[1])):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
                removed += 1
        return removed

    # -- manifests and model cards ---------------------------------------------------------------
    def manifest_path(self, job: str) -> Path:
        return self.root / "manifests" / f"{job}.json"

    def read_manifest(self, job: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.manifest_path(job).read_text())
        except (OSError, ValueError):
            return None

    def write_manifest(self, job: str, manifest: dict[str, Any]) -> None:
        with FileLock(self.root / "locks" / f"manifest-{job}.lock"):
            write_json_atomic(self.manifest_path(job), manifest, fault="manifest-write")

    def write_model_card(self, model_dir: str, card: dict[str, Any]) -> None:
        folder = self.root / model_dir
        card = {**card, "filters": "filters.png" if (folder / "filters.png").exists() else None}
        write_json_atomic(folder / "model.json", card)

    def write_file(self, relative: str, write: Callable[[Path], None]) -> None:
        """Write one file atomically: `write(temporary_path)`, then rename into place."""
        final = self.root / relative
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.parent / temporary_name(final.name)
        try:
            write(temporary)
            os.replace(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    # -- locks -----------------------------------------------------------------------------------
    @contextmanager
    def lock_units(self, keys: list[str], wait: float = 0) -> Iterator[list[str]]:
        """Lock as many of `keys` as possible (waiting up to `wait` s for each); yield the keys held.
        Locks are advisory fcntl locks: the OS drops them when a process dies, even by kill -9."""
        (self.root / "locks").mkdir(parents=True, exist_ok=True)
        held: list[tuple[str, FileLock]] = []
        try:
            for key in keys:
                lock = FileLock(self.root / "locks" / f"{key[:24]}.lock")
                try:
                    lock.acquire(timeout=wait)
                    held.append((key, lock))
                except Timeout:
                    continue
            yield [key for key, _ in held]
        finally:
            for _, lock in held:
                lock.release()


def _describe(folder: Path, declared: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Replace every declared path in `files` (a name or a list of names) by a checksummed entry."""
    described: dict[str, Any] = {}
    for role, value in declared.items():
        if isinstance(value, list):
            described[role] = [file_entry(folder, name) for name in value]
        else:
            described[role] = file_entry(folder, value)
    return described


def _valid_entry(entry: Any) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("path"), str) and bool(entry["path"])
            and isinstance(entry.get("sha256"), str) and isinstance(entry.get("bytes"), int)
            and not isinstance(entry["bytes"], bool))


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
