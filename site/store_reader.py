"""Read a featvis store (pipeline/STORE.md, schema 1) into an Atlas, verifying every done unit.

The site never trusts the store blindly: a unit is published only when its manifest says ``done`` and
verify.py finds its files intact. Anything else is kept, as not-published (pending/failed/corrupt), so a
partial or damaged atlas still builds and browses. Problems the user must fix first (no store, no
manifests, unreadable manifest) raise SiteError.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from featvis_site.atlas import LOGITS, Atlas, Job, Layer, LayerSpec, Model, StoredFile, Unit
from featvis_site.errors import SiteError
from featvis_site.verify import inside, verify_unit

SCHEMA = 1


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
    if not path.is_file() or not inside(path, root / model):
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
