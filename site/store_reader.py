"""Read a featvis store (pipeline/STORE.md, schema 1) into dataclasses, verifying checksums.

The site never trusts the store blindly: a unit is published only when its manifest says ``done`` *and*
its meta.json matches the manifest's content key *and* every file the site uses matches the sha256 that
meta.json records. Anything else is kept, but as not-published (pending/failed/corrupt), so a partial or
damaged atlas still builds and browses.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from featvis_site.errors import SiteError

SCHEMA = 1
#: meta.json ``files`` roles the site needs for every published unit.
REQUIRED_ROLES = ("image_web", "thumb")
#: roles the site uses when present (a job may render without video).
OPTIONAL_ROLES = ("anim_webp", "mp4")
#: points kept of a unit's activation history: plenty for a 320 px chart, small in JSON.
HISTORY_POINTS = 96
LOGITS = "logits"


@dataclass(frozen=True)
class StoredFile:
    """One verified file of a unit, as the site will publish it."""

    role: str
    path: Path  # absolute path in the store
    rel: str  # posix path relative to the store root
    size: int
    sha256: str


@dataclass(frozen=True)
class Activation:
    """Activation reached by the optimisation; ``history`` is downsampled to HISTORY_POINTS."""

    start: float | None
    final: float | None
    best: float | None
    steps: int
    history: tuple[float | None, ...]


@dataclass
class Unit:
    """One unit of one manifest, with its verification outcome."""

    model: str
    layer: str
    unit: str
    kind: str
    index: int | None
    label: str
    key: str
    path: str
    job: str
    updated: str
    state: str  # done | pending | failed | corrupt
    reason: str | None = None  # why it is not published
    files: dict[str, StoredFile] = field(default_factory=dict)
    diversity: tuple[StoredFile, ...] = ()
    activation: Activation | None = None
    scores: dict[str, float] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    size: tuple[int, int] | None = None
    created: str | None = None

    @property
    def published(self) -> bool:
        return self.state == "done"

    @property
    def key12(self) -> str:
        return self.key[:12]

    @property
    def folder(self) -> str:
        """The unit folder name, ``<slug>@<key12>``."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def sort_key(self) -> tuple[int, int, str]:
        kinds = {"channel": 0, "neuron": 1, "negative": 2, "layer": 3, "logit": 0}
        return (kinds.get(self.kind, 9), self.index if self.index is not None else -1, self.unit)


@dataclass(frozen=True)
class LayerSpec:
    """A layer as model.json describes it (``channels`` None when model.json does not know it)."""

    name: str
    channels: int | None = None
    height: int | None = None
    width: int | None = None


@dataclass(frozen=True)
class Job:
    """One manifest: which job rendered what, with which settings."""

    name: str
    model: str
    preset: str | None
    settings: dict[str, Any]
    updated: str
    counts: dict[str, int]
    source: Path


@dataclass
class Layer:
    """A layer that has at least one unit in a manifest."""

    spec: LayerSpec
    units: list[Unit]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def is_logits(self) -> bool:
        return self.name == LOGITS

    @property
    def published(self) -> list[Unit]:
        return [u for u in self.units if u.published]


@dataclass
class Model:
    """A model of the store: its card (model.json), its jobs and its layers with units."""

    name: str
    card: dict[str, Any]
    all_layers: list[LayerSpec]
    classes: list[str]
    filters: StoredFile | None
    jobs: list[Job]
    layers: list[Layer]

    @property
    def units(self) -> list[Unit]:
        return [u for layer in self.layers for u in layer.units]

    @property
    def logits(self) -> Layer | None:
        return next((layer for layer in self.layers if layer.is_logits), None)

    @property
    def feature_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if not layer.is_logits]


@dataclass
class Atlas:
    """Everything the site shows, read from one store."""

    root: Path
    models: list[Model]
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def units(self) -> list[Unit]:
        return [u for m in self.models for u in m.units]


# ----------------------------------------------------------------------------------------------- helpers


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


def _load_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SiteError(f"{what} {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except OSError as exc:
        raise SiteError(f"cannot read {what} {path}: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise SiteError(f"{what} {path} is not a JSON object")
    return data


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------------------ verification


class _Corrupt(Exception):
    """A done unit whose folder does not hold what its manifest promises."""


def _verify_file(entry: Any, role: str, unit_dir: Path, root: Path) -> StoredFile:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise _Corrupt(f"meta.json has no valid '{role}' file entry")
    path = unit_dir / entry["path"]
    if not _inside(path, unit_dir):
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
        if name.startswith(".") or name.endswith(".tmp") or not _inside(unit_dir, root):
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


# ------------------------------------------------------------------------------------------------ reading


def _units_of(manifest: dict[str, Any], source: Path) -> list[Unit]:
    units = []
    job, updated = str(manifest.get("job", source.stem)), str(manifest.get("updated", ""))
    for i, entry in enumerate(manifest.get("units") or []):
        try:
            layer, path, key = entry["layer"], entry["path"], entry["key"]
            unit_id = entry.get("unit") or f"{layer}:{entry.get('index')}"
        except (KeyError, TypeError):
            raise SiteError(f"manifest {source} unit #{i} lacks 'layer', 'path' or 'key'") from None
        state = entry.get("state", "pending")
        if state not in ("done", "pending", "failed"):
            state = "pending"
        index = entry.get("index")
        units.append(
            Unit(
                model=str(manifest["model"]),
                layer=str(layer),
                unit=str(unit_id),
                kind=str(entry.get("kind", "channel")),
                index=index if isinstance(index, int) else None,
                label=str(entry.get("label") or unit_id),
                key=str(key),
                path=str(path),
                job=job,
                updated=updated,
                state=state,
                reason=entry.get("error") if state == "failed" else ("not rendered yet" if state == "pending" else None),
            )
        )
    return units


def _read_manifests(root: Path) -> list[tuple[Job, list[Unit]]]:
    folder = root / "manifests"
    paths = sorted(p for p in folder.glob("*.json") if not p.name.startswith(".")) if folder.is_dir() else []
    if not paths:
        raise SiteError(f"no manifests in {folder}: render something first (featvis run <job>)")
    jobs = []
    for path in paths:
        data = _load_json(path, "manifest")
        if data.get("schema") != SCHEMA:
            raise SiteError(f"manifest {path} has schema {data.get('schema')!r}; this site reads schema {SCHEMA}")
        if not isinstance(data.get("model"), str) or not isinstance(data.get("units"), list):
            raise SiteError(f"manifest {path} lacks 'model' or 'units'")
        job = Job(
            name=str(data.get("job", path.stem)),
            model=data["model"],
            preset=data.get("preset"),
            settings=data.get("settings") if isinstance(data.get("settings"), dict) else {},
            updated=str(data.get("updated", "")),
            counts={k: v for k, v in (data.get("counts") or {}).items() if isinstance(v, int)},
            source=path,
        )
        jobs.append((job, _units_of(data, path)))
    return jobs


def _pick(current: Unit | None, candidate: Unit) -> Unit:
    """Two manifests name the same unit: prefer the published one, then the newer manifest."""
    if current is None:
        return candidate
    rank = lambda u: (u.published, u.state != "corrupt", u.updated)  # noqa: E731
    return candidate if rank(candidate) > rank(current) else current


def _model_card(root: Path, name: str, warnings: list[str]) -> dict[str, Any]:
    path = root / name / "model.json"
    if not path.is_file():
        warnings.append(f"{path} is missing: layer sizes and class names are unknown")
        return {"model": name, "layers": [], "classes": []}
    return _load_json(path, "model card")


def _filters(root: Path, model: str, card: dict[str, Any]) -> StoredFile | None:
    name = card.get("filters")
    if not isinstance(name, str):
        return None
    path = root / model / name
    if not path.is_file() or not _inside(path, root / model):
        return None
    return StoredFile("filters", path, path.relative_to(root).as_posix(), path.stat().st_size, "")


def read_store(root: Path | str, *, workers: int | None = None) -> Atlas:
    """Read and verify a whole store. Raises SiteError for problems the user must fix first."""
    started = time.perf_counter()
    root = Path(root)
    if not root.is_dir():
        raise SiteError(f"store not found: {root} (pass --store PATH or run `featvis run demo` first)")
    root = root.resolve()
    jobs = _read_manifests(root)
    if not any(units for _, units in jobs):
        raise SiteError(f"the manifests in {root / 'manifests'} list no units")

    chosen: dict[tuple[str, str, str], Unit] = {}
    order: list[tuple[str, str, str]] = []
    candidates = [u for _, units in jobs for u in units]
    workers = workers or min(8, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        verified = list(pool.map(lambda u: verify_unit(u, root), candidates, chunksize=32))
    for unit in verified:
        ident = (unit.model, unit.kind, unit.unit)
        if ident not in chosen:
            order.append(ident)
        chosen[ident] = _pick(chosen.get(ident), unit)

    warnings: list[str] = []
    models: list[Model] = []
    for model_name in dict.fromkeys(job.model for job, _ in jobs):
        card = _model_card(root, model_name, warnings)
        specs = [
            LayerSpec(str(x["name"]), x.get("channels"), x.get("height"), x.get("width"))
            for x in card.get("layers") or []
            if isinstance(x, dict) and "name" in x
        ]
        classes = [str(c) for c in card.get("classes") or []]
        units = [chosen[i] for i in order if i[0] == model_name]
        by_layer: dict[str, list[Unit]] = {}
        for unit in units:
            by_layer.setdefault(unit.layer, []).append(unit)
        known = {s.name: s for s in specs}
        names = [s.name for s in specs if s.name in by_layer]
        names += [n for n in by_layer if n not in known and n != LOGITS]
        if LOGITS in by_layer:
            names.append(LOGITS)
        layers = []
        for name in names:
            spec = known.get(name) or LayerSpec(name, (len(classes) or None) if name == LOGITS else None)
            layers.append(Layer(spec, sorted(by_layer[name], key=lambda u: u.sort_key)))
        for unit in units:
            if unit.kind == "logit" and unit.index is not None and 0 <= unit.index < len(classes):
                unit.label = classes[unit.index]  # model.json is the authority on class names
        models.append(
            Model(
                name=model_name,
                card=card,
                all_layers=specs,
                classes=classes,
                filters=_filters(root, model_name, card),
                jobs=[job for job, _ in jobs if job.model == model_name],
                layers=layers,
            )
        )
    return Atlas(root=root, models=models, seconds=time.perf_counter() - started, warnings=warnings)
