"""The on-disk artifact store (format: pipeline/STORE.md, rules: storeformat.py).

Every unit lives in its own folder named by a content key, and appears there all at once: its files are
written into a hidden temporary folder, checksummed into `meta.json` (written last), flushed, and the
folder is renamed into place. A reader therefore sees a unit complete or not at all, a killed run leaves
only a hidden `.tmp` folder (swept on the next run), and a finished unit is never redone. Unit-level file
locks keep two runs sharing a store from rendering the same unit at the same time. Every path goes
through storeformat's layout and containment checks first, so a store that was tampered with (a `..` in a
manifest, a symbolic link for a folder) is refused instead of followed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from filelock import FileLock, Timeout

from . import faults, storeformat
from .storeformat import LOCKS, MANIFESTS, META, SCHEMA, Manifest, StoreFormatError, UnitCheck, sha256_file

__all__ = ["META", "SCHEMA", "Store", "StoreFormatError", "now", "sha256_file", "write_json_atomic"]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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
    """A store rooted at `root`. Paths handed around are relative to the root (`model/layer/slug@key12`) and
    checked against the layout before use (StoreFormatError, a ValueError, when they do not fit)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            from featvis_core import FeatvisError

            raise FeatvisError(f"store {str(self.root)!r} is a file, not a folder")

    # -- reading ---------------------------------------------------------------------------------
    def unit_dir(self, relative: str) -> Path:
        return storeformat.unit_folder(self.root, relative)

    def check(self, relative: str, key: str | None = None, verify: bool = True) -> UnitCheck:
        """The unit's meta and its problems (`verify`: hash every file, else sizes only)."""
        return storeformat.check_unit(self.root, relative, key, checksums=verify)

    def is_done(self, relative: str, key: str, verify: bool = False) -> bool:
        """True when the unit's folder holds a done meta.json for this key whose files are all there
        (and, with `verify`, match their checksums)."""
        return self.check(relative, key, verify).done

    def problems(self, relative: str) -> list[str]:
        """What is wrong with a finished unit, as readable phrases (empty when all is well)."""
        return self.check(relative).problems

    # -- writing ---------------------------------------------------------------------------------
    def _parent(self, relative: str) -> Path:
        """The parent folders of a unit (or an extras folder), created one level at a time, each level checked
        first: a link planted for a model or layer folder is refused before anything is created through it."""
        parts = storeformat.check_folder(relative).split("/")
        self.root.mkdir(parents=True, exist_ok=True)
        for depth in range(1, len(parts)):
            storeformat.contained(self.root, "/".join(parts[:depth])).mkdir(exist_ok=True)
        return self.root.joinpath(*parts)  # a link in its place is moved aside by _replace, never followed

    def check_folders(self, folders: list[str]) -> None:
        """Refuse (StoreFormatError, one line) a store whose own folders a run writes into (`manifests`,
        `locks`, a model or layer folder) are links: found before a run starts, not half-way through it."""
        for folder in (MANIFESTS, LOCKS, *folders):
            link = self.first_link(folder)
            if link:
                raise StoreFormatError(f"{self.root / link} is a symbolic link, not a folder of the store "
                                       "(featvis verify --repair removes it)")

    def write_unit(self, relative: str, fill: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        """Create a unit atomically. `fill(folder)` writes the unit's files into a temporary folder and
        returns its meta (without `files`); checksums are added and meta.json is written last."""
        final = self._parent(relative)
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
        if final.exists() or final.is_symlink():
            trash = final.parent / f".{final.name}~trash~{uuid.uuid4().hex[:8]}.tmp"
            os.rename(final, trash)
            faults.hit("unit-replace")
            os.rename(temporary, final)
            _remove(trash)
        else:
            os.rename(temporary, final)
        _fsync(final.parent)

    def remove_unit(self, relative: str) -> None:
        """Remove a unit folder (only ever a checked unit folder of this store: never what a link points to)."""
        storeformat.parse_unit_path(relative)
        folder = storeformat.contained(self.root, relative.rsplit("/", 1)[0]) / relative.rsplit("/", 1)[1]
        if folder.exists() or folder.is_symlink():
            trash = folder.parent / f".{folder.name}~trash~{uuid.uuid4().hex[:8]}.tmp"
            os.rename(folder, trash)
            _remove(trash)

    def first_link(self, relative: str) -> str | None:
        """The first folder or file on `relative`'s way down from the root that is a symbolic link (None: none).
        A store's own layout never has one: a link there was planted or copied in."""
        parts = [part for part in relative.split("/") if part not in ("", ".")]
        if ".." in parts:
            return None
        for n in range(1, len(parts) + 1):
            if self.root.joinpath(*parts[:n]).is_symlink():
                return "/".join(parts[:n])
        return None

    def remove_link(self, relative: str) -> None:
        """Remove a symbolic link inside the store (the link only, never what it points to)."""
        if self.first_link(relative) != relative:
            raise StoreFormatError(f"{relative} is not a link inside the store")
        self.root.joinpath(*relative.split("/")).unlink()

    def sweep(self) -> int:
        """Delete temporary folders and files left by killed writers on this host; returns how many."""
        host, removed = socket.gethostname(), 0
        if not self.root.exists():
            return 0
        for path in list(self.root.rglob(".*~*.tmp")):  # rglob never enters a linked folder
            owner = path.name[:-4].split("~")[1:3]
            if owner[:1] == ["trash"] or (len(owner) == 2 and owner[0] == host and not _pid_alive(owner[1])):
                _remove(path)
                removed += 1
        return removed

    # -- manifests and model cards ---------------------------------------------------------------
    def manifest_path(self, job: str) -> Path:
        if not storeformat.JOB.fullmatch(job):
            raise StoreFormatError(f"{job!r} cannot name a manifest")
        return storeformat.store_folder(self.root, MANIFESTS) / f"{job}.json"

    def load_manifest(self, job: str) -> Manifest | None:
        """The job's manifest, validated (None when there is none); StoreFormatError when it is unusable."""
        path = self.manifest_path(job)
        if not path.exists() and not path.is_symlink():
            return None
        return storeformat.load_manifest(path)

    def read_manifest(self, job: str) -> Manifest | None:
        """The job's manifest, or None when it is absent or unusable."""
        try:
            return self.load_manifest(job)
        except StoreFormatError:
            return None

    def write_manifest(self, job: str, manifest: dict[str, Any]) -> None:
        path = self.manifest_path(job)
        with FileLock(self._lock_file(f"manifest-{job}.lock")):
            write_json_atomic(path, manifest, fault="manifest-write")

    def write_model_card(self, model_dir: str, card: dict[str, Any]) -> None:
        folder = storeformat.store_folder(self.root, model_dir)
        filters = folder / storeformat.FILTERS
        card = {**card, "filters": storeformat.FILTERS if filters.is_file() and not filters.is_symlink() else None}
        write_json_atomic(folder / storeformat.MODEL_CARD, card)

    def write_file(self, relative: str, write: Callable[[Path], None]) -> None:
        """Write one file of the store (`model/filters.png`, `examples/images/<id>/v0000.webp`) atomically:
        `write(temporary_path)`, then rename into place. Every folder on the way is created one level at a
        time and checked (a plain name, no link, inside the store) before anything is written into it."""
        parts = relative.split("/")
        if len(parts) < 2 or not all(storeformat.NAME.fullmatch(part) for part in parts):
            raise StoreFormatError(f"{relative!r} is not a file of the store")
        folder = storeformat.store_folder(self.root, parts[0])
        for depth in range(1, len(parts)):
            folder = storeformat.contained(self.root, "/".join(parts[:depth]))
            folder.mkdir(exist_ok=True)
            storeformat.contained(self.root, "/".join(parts[:depth]))  # still no link once it exists
        final = folder / parts[-1]
        temporary = final.parent / temporary_name(final.name)
        try:
            write(temporary)
            os.replace(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def checked(self, relative: str) -> Path:
        """`root/relative` for a file of the store's extras (a shard, an index, an extras manifest, a circuit
        file), after checking it stays inside the store with no symbolic link on the way (StoreFormatError)."""
        parts = relative.split("/") if isinstance(relative, str) else [""]
        if any(part in ("", ".", "..") or "\x00" in part for part in parts):
            raise StoreFormatError(f"{relative!r} is not a path inside the store")
        return storeformat.contained(self.root, relative)

    def write_json(self, relative: str, data: Any) -> None:
        """Write a JSON file of the store's extras atomically. Its folders are checked before and after they
        are created, so a link planted for one of them is refused, never written through; a link in the
        file's own place is replaced by the file, never followed."""
        folder, _, name = relative.rpartition("/")
        if not folder or name in ("", ".", ".."):
            raise StoreFormatError(f"{relative!r} is not a file in a folder of the store")
        self.checked(folder).mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.checked(folder) / name, data)

    # -- locks -----------------------------------------------------------------------------------
    def _lock_file(self, name: str) -> Path:
        """A lock file's path in `locks/`; a link planted there is removed, never opened."""
        folder = storeformat.store_folder(self.root, LOCKS)
        folder.mkdir(parents=True, exist_ok=True)
        storeformat.store_folder(self.root, LOCKS)
        path = folder / name
        if path.is_symlink():
            path.unlink()
        return path

    @contextmanager
    def lock_units(self, keys: list[str], wait: float = 0,
                   check: Callable[[], None] | None = None) -> Iterator[list[str]]:
        """Lock as many of `keys` as possible (waiting up to `wait` s for each); yield the keys held.
        Locks are advisory fcntl locks: the OS drops them when a process dies, even by kill -9. A long wait
        calls `check()` every second, which may raise to stop waiting (a stop asked by the user)."""
        held: list[tuple[str, FileLock]] = []
        try:
            for key in keys:
                lock = FileLock(self._lock_file(f"{key[:24]}.lock"))
                deadline = time.monotonic() + wait
                while True:
                    try:
                        lock.acquire(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
                        held.append((key, lock))
                        break
                    except Timeout:
                        if time.monotonic() >= deadline:
                            break
                        if check:
                            check()
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


def _remove(path: Path) -> None:
    """Remove a file, a link or a folder tree (never what a link points to)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
