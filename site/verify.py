"""Check one unit the manifest calls done: meta.json present, same content key, files matching sha256.

A unit failing any check is marked ``corrupt`` (shown as pending, never published), as pipeline/STORE.md
asks: the next ``featvis run`` re-renders it.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Iterable

from featvis_site.atlas import Activation, StoredFile, Unit

#: meta.json ``files`` roles the site needs for every published unit.
REQUIRED_ROLES = ("image_web", "thumb")
#: roles the site uses when present (a job may render without video).
OPTIONAL_ROLES = ("anim_webp", "mp4")
#: points kept of a unit's activation history: plenty for a 320 px chart, small in JSON.
HISTORY_POINTS = 96


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed (videos can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def downsample(values: Iterable[Any], points: int = HISTORY_POINTS) -> tuple[float | None, ...]:
    """Keep at most ``points`` values, always the first and the last, rounded to 4 significant digits.

    Non-numeric or non-finite values become None so the chart can skip them (JSON has no NaN).
    """
    seq = list(values)
    if len(seq) > points > 1:
        last = len(seq) - 1
        seq = [seq[round(i * last / (points - 1))] for i in range(points)]
    out: list[float | None] = []
    for v in seq:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out.append(float(f"{v:.4g}"))
        else:
            out.append(None)
    return tuple(out)


def _num(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
    except ValueError:
        return False
    return True


class _Corrupt(Exception):
    """A done unit whose folder does not hold what its manifest promises."""


def _verify_file(entry: Any, role: str, unit_dir: Path, root: Path) -> StoredFile:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise _Corrupt(f"meta.json has no valid '{role}' file entry")
    path = unit_dir / entry["path"]
    if not inside(path, unit_dir):
        raise _Corrupt(f"{role} path escapes the unit folder")
    try:
        size = path.stat().st_size
    except OSError:
        raise _Corrupt(f"{entry['path']} is missing") from None
    if isinstance(entry.get("bytes"), int) and entry["bytes"] != size:
        raise _Corrupt(f"{entry['path']} has {size} bytes, meta.json says {entry['bytes']}")
    digest = sha256_file(path)
    if digest != str(entry.get("sha256", "")).lower():
        raise _Corrupt(f"{entry['path']} fails its sha256 check")
    return StoredFile(role, path, path.relative_to(root).as_posix(), size, digest)


def verify_unit(unit: Unit, root: Path) -> Unit:
    """Check a unit the manifest calls done; on any mismatch mark it ``corrupt`` (shown as pending)."""
    if unit.state != "done":
        return unit
    try:
        unit_dir = root / unit.path
        name = unit_dir.name
        if name.startswith(".") or name.endswith(".tmp") or not inside(unit_dir, root):
            raise _Corrupt("unit path is not a published unit folder")
        meta_path = unit_dir / "meta.json"
        if not meta_path.is_file():
            raise _Corrupt("meta.json is missing")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _Corrupt("meta.json is not valid JSON") from None
        if not isinstance(meta, dict):
            raise _Corrupt("meta.json is not a JSON object")
        if meta.get("key") != unit.key:
            raise _Corrupt("meta.json belongs to another content key (stale unit)")
        if meta.get("status", "done") != "done":
            unit.state, unit.reason = "failed", str(meta.get("error") or "render failed")
            return unit
        files = meta.get("files") or {}
        verified: dict[str, StoredFile] = {}
        for role in REQUIRED_ROLES:
            verified[role] = _verify_file(files.get(role), role, unit_dir, root)
        for role in OPTIONAL_ROLES:
            if files.get(role):
                verified[role] = _verify_file(files[role], role, unit_dir, root)
        diversity = tuple(
            _verify_file(entry, "diversity", unit_dir, root) for entry in (files.get("diversity") or [])
        )
        for role, entry in files.items():  # unpublished files too (image.png): a unit is whole or corrupt
            if role not in verified and role != "diversity":
                _verify_file(entry, role, unit_dir, root)
    except _Corrupt as exc:
        unit.state, unit.reason = "corrupt", str(exc)
        return unit

    act = meta.get("activation") or {}
    history = act.get("history") if isinstance(act.get("history"), list) else []
    size = meta.get("size")
    unit.files, unit.diversity = verified, diversity
    unit.activation = Activation(
        start=_num(act.get("start")),
        final=_num(act.get("final")),
        best=_num(act.get("best")),
        steps=len(history),
        history=downsample(history),
    )
    unit.scores = {k: v for k, v in (meta.get("scores") or {}).items() if _num(v) is not None}
    unit.timings = meta.get("timings") if isinstance(meta.get("timings"), dict) else {}
    unit.size = (int(size[0]), int(size[1])) if isinstance(size, list) and len(size) == 2 else None
    unit.created = meta.get("created")
    if isinstance(meta.get("label"), str) and meta["label"]:
        unit.label = meta["label"]
    return unit
