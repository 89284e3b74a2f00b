"""A job's real-image extras, after its units are rendered: dataset examples, explain pages, circuit
links and eternal-zoom dives, as Prefect tasks, cached in the store, summed up in one extras manifest
(`examples/manifests/<job>.json`, STORE.md) that the site reads.

Every stage is keyed by what decides its output (image contents, model weights, layers, settings, the
rendered units' keys), so a rerun with nothing changed does nothing, and `pending` tells the command line
so without starting a flow.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from tqdm import tqdm

from featvis_core import Kind
from featvis_core.units import LOGITS

from . import examples as ex
from .extras_spec import ExamplesSpec, ZoomSpec
from .jobs import JobSpec
from .plan import Plan
from .store import SCHEMA, Store, now

EXTRAS_VERSION = "1"
MANIFESTS = f"{ex.EXAMPLES}/manifests"


def manifest_path(store: Store, job: str) -> Path:
    return store.checked(manifest_file(job))


def manifest_file(job: str) -> str:
    """The store-relative path of a job's extras manifest."""
    return f"{MANIFESTS}/{job}.json"


def _key(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def wanted(job: JobSpec) -> bool:
    return job.examples is not None or job.zoom is not None


# ---------------------------------------------------------------------------------------------- tasks


@task(name="examples-shard", task_run_name="examples shard {shard.index}", cache_policy=None)
def shard_task(shard: ex.Shard) -> dict[str, Any]:
    return ex.scan_shard(shard)


@dataclass(frozen=True)
class ExplainJob:
    store: str
    model: str
    layer: str
    among: tuple[int, ...]
    channels: int
    images: tuple[tuple[str, str, str, str], ...]  # (id, name, path, store-relative folder)


@task(name="explain-images", cache_policy=None)
def explain_task(job: ExplainJob) -> int:
    """Predictions, saliency and activation maps of each image, one store folder per image."""
    from featvis_core import media
    from featvis_core.examples import open_rgb
    from featvis_core.explain import explain, heat_overlay

    from . import devices
    from .tiles import model_on

    model = model_on(job.model, devices.current())
    store = Store(job.store)
    for ident, name, path, relative in job.images:
        found = explain(model, open_rgb(Path(path)), job.layer, job.channels, job.among or None)

        def fill(folder: Path, found=found, ident=ident, name=name, relative=relative) -> dict[str, Any]:
            media.write_webp(folder / "view.webp", found.view, quality=88)
            media.write_webp(folder / "saliency.webp", heat_overlay(found.view, found.saliency), quality=88)
            media.write_webp(folder / "smoothgrad.webp", heat_overlay(found.view, found.smoothgrad), quality=88)
            (folder / "maps").mkdir()
            maps = []
            for (channel, _), heat in zip(found.channels, found.maps):
                media.write_webp(folder / "maps" / f"c{channel:04d}.webp", heat_overlay(found.view, heat), quality=85)
                maps.append(f"maps/c{channel:04d}.webp")
            return {"schema": SCHEMA, "key": relative.rsplit("@", 1)[-1], "image": ident, "name": name,
                    "model": job.model, "layer": job.layer, "status": "done",
                    "top5": [{"class": c, "label": label, "p": round(p, 5)} for c, label, p in found.top5],
                    "channels": [{"channel": c, "mean": round(m, 4)} for c, m in found.channels],
                    "files": {"view": "view.webp", "saliency": "saliency.webp", "smoothgrad": "smoothgrad.webp",
                              "maps": maps},
                    "created": now()}

        store.write_unit(relative, fill)
    return len(job.images)


@dataclass(frozen=True)
class CircuitJob:
    store: str
    model: str
    layer: str
    previous: str
    units: tuple[int, ...]  # channel/class indices of `layer`'s rendered units
    images: tuple[str, ...]  # each unit's image.png (store-relative)
    examples: tuple[tuple[tuple[str, int], ...], ...]  # each unit's (image path, view) dataset examples
    crops: dict[str, Any]
    previous_units: tuple[int, ...]
    links: int
    file: str
    key: str


@task(name="circuits-layer", task_run_name="circuits {job.layer}", cache_policy=None)
def circuit_task(job: CircuitJob) -> str:
    """Upstream links of every rendered unit of `layer` and downstream links of `previous`'s units."""
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from featvis_core.circuits import attribution, strongest
    from featvis_core.examples import CropSpec, open_rgb, to_tensor, view_image

    from . import devices
    from .tiles import model_on

    model = model_on(job.model, devices.current())
    size, crops = model.input_size, CropSpec(**job.crops)
    store = Store(job.store)
    rows = []
    for unit, image_rel, views in zip(job.units, job.images, job.examples):
        with Image.open(store.root / image_rel) as picture:
            synthetic = to_tensor(picture.convert("RGB"))
        inputs = [F.interpolate(synthetic[None], size=(size, size), mode="bilinear", align_corners=False)[0]]
        for path, view in views:
            image = open_rgb(Path(path))
            inputs.append(to_tensor(view_image(image, ex_id(path), view, crops, size)))
        weights = attribution(model, job.layer, job.previous, torch.stack(inputs), [unit] * len(inputs))
        rows.append(weights.mean(dim=0))
    matrix = torch.stack(rows)  # (units of layer, channels of previous)
    up = strongest(matrix, job.previous_units, job.links)
    down = strongest(matrix.T[list(job.previous_units)], list(range(len(job.units))), job.links)
    data = {
        "schema": SCHEMA, "key": job.key, "layer": job.layer, "previous": job.previous,
        "upstream": {str(u): [[c, w] for c, w in links] for u, links in zip(job.units, up)},
        "downstream": {str(c): [[job.units[i], w] for i, w in links] for c, links in zip(job.previous_units, down)},
    }
    store.write_json(job.file, data)
    return job.file


_IDS: dict[str, str] = {}


def ex_id(path: str) -> str:
    """An example image's content id (cached per process: circuit inputs reuse a few images)."""
    from featvis_core.examples import image_id

    if path not in _IDS:
        _IDS[path] = image_id(Path(path))
    return _IDS[path]


@dataclass(frozen=True)
class ZoomJob:
    store: str
    model: str
    classes: tuple[int, ...]
    labels: tuple[str, ...]
    folders: tuple[str, ...]
    spec: dict[str, Any]


@task(name="eternal-zoom", cache_policy=None)
def zoom_task(job: ZoomJob) -> int:
    from featvis_core import media
    from featvis_core.zoom import eternal_zoom

    from . import devices
    from .tiles import model_on

    spec = ZoomSpec.model_validate(job.spec)
    model = model_on(job.model, devices.current())
    movies = eternal_zoom(model, job.classes, spec.config())
    store = Store(job.store)
    for index, label, folder, frames in zip(job.classes, job.labels, job.folders, movies):
        def fill(path: Path, frames=frames, index=index, label=label, folder=folder) -> dict[str, Any]:
            media.write_mp4(path / "dive.mp4", frames, fps=spec.fps, hold=0)
            media.write_webp(path / "poster.webp", frames[0].permute(2, 0, 1).float() / 255, quality=85)
            return {"schema": SCHEMA, "key": folder.rsplit("@", 1)[-1], "model": job.model, "unit": f"logits:{index}",
                    "index": index, "label": label, "status": "done", "settings": spec.model_dump(),
                    "frames": len(frames), "files": {"mp4": "dive.mp4", "poster": "poster.webp"}, "created": now()}

        store.write_unit(folder, fill)
    return len(job.classes)


# ---------------------------------------------------------------------------------------------- stages


def _forward_order(plan: Plan, layers: list[str]) -> list[str]:
    order = {layer.name: i for i, layer in enumerate(plan.model.layers())}
    return sorted(layers, key=lambda name: (name == LOGITS, order.get(name, len(order))))


def _done_units(plan: Plan, store: Store) -> dict[str, Any]:
    return {u.spec: u for u in plan.units if store.is_done(u.path, u.key)}


def _explain_plan(spec: ExamplesSpec, plan: Plan, eplan: ex.ExamplePlan, chosen: dict[str, dict[str, list]]):
    channel_layers = _forward_order(plan, [u.unit.layer for u in plan.units if u.unit.kind is Kind.CHANNEL])
    layer = spec.explain_layer or (channel_layers[-1] if channel_layers else None)
    if layer is None or spec.explain_images == 0:
        return None, []
    plan.model.resolve_layer(layer)  # a one-line error for a layer the model lacks
    among = tuple(sorted(u.unit.index for u in plan.units if u.unit.layer == layer and u.unit.kind is Kind.CHANNEL))
    counts: dict[str, int] = {}
    for lists in chosen.values():
        for _, ident, _ in lists["top"]:
            counts[ident] = counts.get(ident, 0) + 1
    by_id = {image.id: image for image in eplan.images}
    ranked = sorted(counts, key=lambda i: (-counts[i], by_id[i].rel))[: spec.explain_images]
    settings = {"layer": layer, "among": among, "channels": spec.explain_channels, "version": EXTRAS_VERSION,
                "weights": plan.model.fingerprint}
    folders = []
    for ident in ranked:
        key = _key({**settings, "image": ident})
        folders.append((ident, by_id[ident].rel, by_id[ident].path, f"{ex.EXAMPLES}/explain/{plan.model_dir}/{ident}@{key[:12]}"))
    return (layer, among), folders


def _circuit_jobs(spec: ExamplesSpec, plan: Plan, store: Store, chosen: dict[str, dict[str, list]],
                  eplan: ex.ExamplePlan | None, done: dict[str, Any]) -> list[CircuitJob]:
    kinds = (Kind.CHANNEL, Kind.LOGIT)
    layers = _forward_order(plan, list(dict.fromkeys(u.unit.layer for u in plan.units if u.unit.kind in kinds)))
    by_id = {image.id: image.path for image in eplan.images} if eplan else {}
    jobs = []
    for previous, layer in zip(layers, layers[1:]):
        if previous == LOGITS:
            continue
        units = [done[u.spec] for u in plan.units if u.unit.layer == layer and u.unit.kind in kinds and u.spec in done]
        previous_units = tuple(u.unit.index for u in plan.units if u.unit.layer == previous and u.unit.kind is Kind.CHANNEL
                               and u.spec in done)
        if not units or not previous_units:
            continue
        examples = tuple(
            tuple((by_id[i], v) for _, i, v in chosen.get(u.spec, {}).get("top", [])[: spec.circuit_examples] if i in by_id)
            for u in units)
        key = _key({"layer": layer, "previous": previous, "units": [u.key for u in units], "previous_units": previous_units,
                    "examples": examples and [[e[1] for e in row] for row in examples], "images": eplan.key if eplan else "",
                    "links": spec.links, "n": spec.circuit_examples, "version": EXTRAS_VERSION})
        jobs.append(CircuitJob(
            str(store.root), plan.job.model, layer, previous, tuple(u.unit.index for u in units),
            tuple(f"{u.path}/image.png" for u in units), examples,
            asdict(spec.crop_spec()), previous_units, spec.links,
            f"circuits/{plan.model_dir}/{layer}@{key[:16]}.json", key))
    return jobs


def _zoom_job(zoom: ZoomSpec, plan: Plan, store: Store) -> tuple[ZoomJob, dict[str, str]]:
    from featvis_core.units import parse_selector

    items = zoom.logits if isinstance(zoom.logits, list) else [zoom.logits]
    selector = ",".join(str(item).strip() for item in items)
    units = parse_selector(f"{LOGITS}:{selector}", len(plan.model.classes), plan.model.class_index)
    folders = {}
    for unit in units:
        key = _key({"model": plan.job.model, "weights": plan.model.fingerprint, "class": unit.index,
                    "zoom": zoom.model_dump(), "version": EXTRAS_VERSION})
        folders[unit.spec] = f"zoom/{plan.model_dir}/{unit.slug}@{key[:12]}"
    todo = [u for u in units if not store.is_done(folders[u.spec], folders[u.spec].rsplit("@", 1)[-1])]
    job = ZoomJob(str(store.root), plan.job.model, tuple(u.index for u in todo),
                  tuple(plan.model.classes[u.index] for u in todo), tuple(folders[u.spec] for u in todo),
                  zoom.model_dump())
    return job, folders


def state_key(job_name: str, job: JobSpec, plan: Plan, store: Store, flows_dir: Path) -> str:
    """Everything the extras depend on: unchanged key, nothing to do."""
    parts: dict[str, Any] = {"version": EXTRAS_VERSION, "job": job_name,
                             "examples": job.examples.model_dump() if job.examples else None,
                             "zoom": job.zoom.model_dump() if job.zoom else None,
                             "done": sorted(u.key for u in plan.units if store.is_done(u.path, u.key))}
    if job.examples:
        units = [u.unit for u in plan.units]
        eplan = ex.plan_examples(job.examples, store, job.model, plan.model.fingerprint, plan.model_dir,
                                 plan.model.input_size, units, flows_dir)
        parts["images"] = eplan.key
    return _key(parts)


def check(job: JobSpec, plan: Plan) -> None:
    """One-line errors for settings that need the model (explain layer, zoom classes), before any work."""
    if job.examples and job.examples.explain_layer:
        plan.model.resolve_layer(job.examples.explain_layer)
    if job.zoom:
        _zoom_job(job.zoom, plan, Store(job.store))


def pending(job_name: str, job: JobSpec, plan: Plan, store: Store, flows_dir: Path = Path(".")) -> bool:
    """Do the job's extras lack anything? (Raises FeatvisError for a bad folder, layer or class.)"""
    if not wanted(job):
        return False
    check(job, plan)
    state = state_key(job_name, job, plan, store, flows_dir)  # resolves (and checks) the image folder
    try:
        recorded = ex.read_json(store, manifest_file(job_name), 64 << 20).get("state")
    except AttributeError:  # none, a link, not JSON or not an object: computed anew
        return True
    return recorded != state


@dataclass
class ExtrasRun:
    """One job's extras pass: what every stage reads, and the manifest and summary they fill in."""

    name: str
    job: JobSpec
    plan: Plan
    store: Store
    runner: Any
    manifest: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)

    def submit(self, task_: Any, jobs: list[Any], name: str = "job") -> list[Any]:
        """Run a Prefect task over `jobs` on the entered task runner, or its plain function inline without one."""
        if not jobs:
            return []
        if self.runner is None:
            return [task_.fn(job) for job in jobs]
        futures = [self.runner.submit(task_, {name: job}) for job in jobs]
        return [future.result() for future in futures]


def run_extras(job_name: str, job: JobSpec, plan: Plan, store: Store, runner: Any = None,
               flows_dir: Path = Path(".")) -> dict[str, Any]:
    """Compute whatever the job's extras lack and write its extras manifest. `runner` is an entered
    Prefect task runner (tasks run inline without one, e.g. in unit tests)."""
    began = time.perf_counter()
    state = state_key(job_name, job, plan, store, flows_dir)
    run = ExtrasRun(job_name, job, plan, store, runner,
                    {"schema": SCHEMA, "job": job_name, "model": job.model, "state": state})
    if job.examples:
        eplan, chosen = _examples_stage(run, flows_dir)
        if job.examples.explain:
            _explain_stage(run, eplan, chosen)
        if job.examples.circuits:
            _circuits_stage(run, eplan, chosen)
    if job.zoom:
        _zoom_stage(run)
    run.manifest["updated"] = now()
    store.write_json(manifest_file(job_name), run.manifest)
    run.summary["seconds"] = round(time.perf_counter() - began, 2)
    return run.summary


def _examples_stage(run: ExtrasRun, flows_dir: Path) -> tuple[Any, dict[str, dict[str, list]]]:
    """Scan the folder's missing shards, merge them per layer, pick each unit's examples, write thumbnails."""
    spec, plan, store = run.job.examples, run.plan, run.store
    units = [u.unit for u in plan.units]
    eplan = ex.plan_examples(spec, store, run.job.model, plan.model.fingerprint, plan.model_dir,
                             plan.model.input_size, units, flows_dir)
    started, rss_before = time.perf_counter(), ex.peak_rss_mb()
    todo = eplan.missing_views()
    with tqdm(total=todo, desc=f"{run.name} examples", unit="img", disable=not todo) as bar, \
            ex.Progress(bar.update) as progress:
        shards = ex.shard_tasks(eplan, store, run.job.model, plan.model_dir, progress.name)
        run.submit(shard_task, shards, "shard")
    seconds = time.perf_counter() - started
    chosen = ex.unit_examples(units, ex.merge_layers(eplan, store, plan.model_dir))
    thumbs = ex.write_thumbs(eplan, store, chosen)
    stats = {"images": len(eplan.images), "views": eplan.views, "shards": len(eplan.bounds),
             "shards_computed": len(shards), "views_computed": todo, "seconds": round(seconds, 2),
             "views_per_s": round(todo / seconds, 2) if todo else None, "peak_rss_mb": round(ex.peak_rss_mb()),
             "peak_rss_before_mb": round(rss_before)}
    run.manifest["examples"] = ex.examples_section(eplan, chosen, thumbs, stats)
    run.summary["examples"] = stats
    _logger().info("%s examples: %d images, %d views, %d of %d shards computed (%s views/s)", run.name,
                   len(eplan.images), eplan.views, len(shards), len(eplan.bounds), stats["views_per_s"])
    return eplan, chosen


def _explain_stage(run: ExtrasRun, eplan: Any, chosen: dict[str, dict[str, list]]) -> None:
    """Explain pages for the example images that lack one."""
    spec = run.job.examples
    chosen_layer, folders = _explain_plan(spec, run.plan, eplan, chosen)
    if not chosen_layer:
        return
    layer, among = chosen_layer
    missing = tuple(f for f in folders if not run.store.is_done(f[3], f[3].rsplit("@", 1)[-1]))
    if missing:
        run.submit(explain_task, [ExplainJob(str(run.store.root), run.job.model, layer, among,
                                             spec.explain_channels, missing)])
    run.manifest["explain"] = {"layer": layer, "images": {ident: folder for ident, _, _, folder in folders}}
    run.summary["explained"] = len(missing)


def _circuits_stage(run: ExtrasRun, eplan: Any, chosen: dict[str, dict[str, list]]) -> None:
    """Circuit links between rendered layers, for the layer pairs whose file is missing."""
    jobs = _circuit_jobs(run.job.examples, run.plan, run.store, chosen, eplan, _done_units(run.plan, run.store))
    todo = [j for j in jobs if not _circuit_done(run.store, j)]
    run.submit(circuit_task, todo)
    run.manifest["circuits"] = {j.layer: j.file for j in jobs}
    run.summary["circuit_layers"] = len(todo)


def _zoom_stage(run: ExtrasRun) -> None:
    """Endless dives of the classes that lack one."""
    zoom_job, folders = _zoom_job(run.job.zoom, run.plan, run.store)
    if zoom_job.classes:
        run.submit(zoom_task, [zoom_job])
    run.manifest["zoom"] = folders
    run.summary["zoomed"] = len(zoom_job.classes)


@flow(name="featvis-extras", flow_run_name="{job}-extras")
def extras_flow(job: str, flows: str = "flows.yaml") -> dict[str, Any]:
    """Only the extras of a job (`featvis examples JOB`): examples, explain pages, circuit links of the
    units rendered so far, zoom dives."""
    from prefect.context import FlowRunContext

    from .flows import plan_job
    from .jobs import load_job

    spec = load_job(flows, job)
    if not wanted(spec):
        from featvis_core import FeatvisError

        raise FeatvisError(f"{flows}: job {job!r} has neither examples: nor zoom:")
    plan = plan_job(job, spec)
    return run_extras(job, spec, plan, Store(spec.store), FlowRunContext.get().task_runner)


def _circuit_done(store: Store, job: CircuitJob) -> bool:
    try:
        return ex.read_json(store, job.file, 64 << 20).get("key") == job.key
    except AttributeError:
        return False


def _logger():
    import logging

    try:
        return get_run_logger()
    except Exception:  # noqa: BLE001 - outside a flow run (unit tests, plain calls)
        return logging.getLogger("featvis.extras")
