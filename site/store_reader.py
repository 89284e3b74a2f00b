"""Read a featvis store (pipeline/STORE.md, schema 1) into an Atlas, verifying every done unit.

The site never trusts the store blindly: a unit is published only when its manifest says ``done`` and
verify.py finds its files intact. Anything else is kept, as not-published (pending/failed/corrupt), so a
partial or damaged atlas still builds and browses. Problems the user must fix first (no store, no
manifests, unreadable manifest) raise SiteError.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from featvis_pipeline.storeformat import (
    LOGITS, MANIFESTS, MAX_CARD_BYTES, ModelCard, StoreFormatError, contained, load, load_manifest, model_dir,
)
from featvis_site.atlas import Atlas, Job, Layer, LayerSpec, Model, StoredFile, Unit
from featvis_site.errors import SiteError
from featvis_site.verify import verify_unit

#: a store with more manifests than this is not one the gallery can show on a few pages
MAX_MANIFESTS = 1000


def _units_of(manifest, source: Path) -> list[Unit]:
    updated = manifest.updated
    return [
        Unit(
            model=manifest.model, layer=entry.layer, unit=entry.unit, kind=entry.kind, index=entry.index,
            label=entry.label or entry.unit, caption=entry.caption, key=entry.key, path=entry.path, job=manifest.job, updated=updated,
            state=entry.state,
            reason=entry.error if entry.state == "failed" else ("not rendered yet" if entry.state == "pending" else None),
        )
        for entry in manifest.units
    ]


def _read_manifests(root: Path) -> list[tuple[Job, list[Unit]]]:
    try:
        folder = contained(root, MANIFESTS)
    except StoreFormatError as error:
        raise SiteError(f"{root / MANIFESTS}: {error}") from None
    paths = sorted(p for p in folder.glob("*.json") if not p.name.startswith(".")) if folder.is_dir() else []
    if not paths:
        raise SiteError(f"no manifests in {folder}: render something first (featvis run <job>)")
    if len(paths) > MAX_MANIFESTS:
        raise SiteError(f"{folder} holds {len(paths)} manifests, more than the {MAX_MANIFESTS} a gallery shows")
    jobs = []
    for path in paths:
        try:
            data = load_manifest(path)
        except StoreFormatError as error:
            raise SiteError(f"manifest {error} (featvis verify --repair removes it)") from None
        job = Job(name=data.job, model=data.model, preset=data.preset, settings=dict(data.settings),
                  updated=data.updated, counts=dict(data.counts), source=path)
        jobs.append((job, _units_of(data, path)))
    return jobs


def _pick(current: Unit | None, candidate: Unit) -> Unit:
    """Two manifests name the same unit: prefer the published one, then the newer manifest."""
    if current is None:
        return candidate
    rank = lambda u: (u.published, u.state != "corrupt", u.updated)  # noqa: E731
    return candidate if rank(candidate) > rank(current) else current


def _model_card(root: Path, name: str, warnings: list[str]) -> ModelCard | None:
    path = root / name / "model.json"
    if not path.is_file() and not path.is_symlink():
        warnings.append(f"{path} is missing: layer sizes and class names are unknown")
        return None
    try:
        contained(root, name)
        card = load(path, ModelCard, MAX_CARD_BYTES)
    except StoreFormatError as error:
        warnings.append(f"{error}: layer sizes and class names are unknown")
        return None
    assert isinstance(card, ModelCard)
    return card


def _filters(root: Path, folder: str, card: ModelCard | None) -> StoredFile | None:
    if card is None or card.filters is None:
        return None
    try:
        path = contained(root, f"{folder}/{card.filters}")
    except StoreFormatError:
        return None
    if not path.is_file() or path.is_symlink():
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
        folder = model_dir(model_name)
        card = _model_card(root, folder, warnings)
        specs = [LayerSpec(x.name, x.channels, x.height, x.width) for x in card.layers] if card else []
        classes = list(card.classes) if card else []
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
                card=card.model_dump(by_alias=True) if card else {"model": model_name, "layers": [], "classes": []},
                all_layers=specs,
                classes=classes,
                filters=_filters(root, folder, card),
                jobs=[job for job, _ in jobs if job.model == model_name],
                layers=layers,
            )
        )
    return Atlas(root=root, models=models, seconds=time.perf_counter() - started, warnings=warnings)
