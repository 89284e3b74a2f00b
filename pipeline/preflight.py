"""Checks a run makes before it spends anything (a model load, a Prefect server, a render): one line each.

* The job's task runner can be made: `ray` needs prefect-ray, `dask` needs prefect-dask (and dask-cuda for
  `cuda: true`). Found by looking for the packages, not by importing them.
* The store can be written: a probe file is created, written, flushed and removed. A read-only store or a full
  disk is then one line before any server starts, instead of a traceback from the first write of a flow.
* The gallery's output folder is one the site build will accept (not the store, not `/etc`, not a folder of
  someone else's files): refused before rendering, not after.
"""

from __future__ import annotations

import errno
import importlib.util
import os
from pathlib import Path

from featvis_core import FeatvisError

from .terminal import printable

PROBE_BYTES = 64 << 10  # a store where 64 kB cannot be written cannot take one unit either

_RUNNER_PACKAGES = {"ray": [("prefect_ray", "prefect-ray")], "dask": [("prefect_dask", "prefect-dask")]}


def check_runner(spec) -> None:
    """FeatvisError naming the package to install when the job's runner cannot be made here."""
    needed = list(_RUNNER_PACKAGES.get(spec.kind, []))
    if spec.kind == "dask" and spec.cuda and not spec.address:
        needed.append(("dask_cuda", "dask-cuda"))
    for module, package in needed:
        if importlib.util.find_spec(module) is None:
            raise FeatvisError(f"runner kind {spec.kind!r}{' with cuda: true' if module == 'dask_cuda' else ''} "
                               f"needs {package}: pip install {package}")


class StoreNotWritable(OSError):
    """The store cannot be written (read-only, full, no permission): an error of the machine, exit status 1."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def check_writable(store: Path) -> None:
    """Create the store if needed, then write, flush and remove a probe file in it (StoreNotWritable)."""
    from .store import temporary_name

    store = Path(store)
    probe = store / temporary_name("write-probe")
    try:
        store.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as error:
        code = error.errno or errno.EIO
        raise StoreNotWritable(code, printable(f"store {store} cannot be written: {error.strerror or error} "
                                               "(checked before the run started; nothing was rendered)")) from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass


def check_site_out(site: Path, store: Path) -> None:
    """The gallery's own guard (featvis_site.build), run now rather than after the render: SiteError there
    becomes a FeatvisError here."""
    from featvis_site.build import _guard
    from featvis_site.errors import SiteError

    out = Path(site).absolute()
    try:
        _guard(out, "output folder", Path(store).resolve())
        _guard(out.parent / f"{out.name}-src", "work folder", Path(store).resolve())
    except SiteError as error:
        raise FeatvisError(f"--site / site: {error}") from None
