"""The body of one tile task: lock, render in one batch, write each unit, report.

Runs wherever the task runner puts it (a thread here, a Dask or Ray worker elsewhere), so it takes
plain data (`Tile`) and loads what it needs: the model on this worker's device, cached per process.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from featvis_core import Classifier, RenderConfig, load_model, render
from featvis_core.scores import GALLERY_VIEWS, seen_size, unit_quality
from featvis_core.units import LOGITS, unit_from_spec

from . import devices, faults, stopping
from .artifacts import unit_filler
from .manifest import write_filters
from .plan import Tile, model_dir
from .store import Store

TRANSFER_MODEL = "efficientnet_lite1"
log = logging.getLogger("featvis.tiles")
_models: dict[tuple[str, str], Classifier] = {}
_models_lock = threading.Lock()


@dataclass
class TileReport:
    tile: str
    rendered: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    stopped: list[str] = field(default_factory=list)  # abandoned after a stop: they stay pending
    render_s: float = 0.0
    write_s: float = 0.0
    total_s: float = 0.0
    device: str = ""
    splits: int = 0


def model_on(name: str, device: torch.device) -> Classifier:
    """One loaded model per (name, device) and process: workers of one process share it."""
    with _models_lock:
        if (name, str(device)) not in _models:
            _models[(name, str(device))] = load_model(name, device)
        return _models[(name, str(device))]


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def render_splitting(model: Classifier, units, config: RenderConfig, report: TileReport):
    """Render `units` in one batch; when the device runs out of memory, halve the batch and retry."""
    faults.hit("render")
    try:
        return render(model, units, config, on_step=stopping.check)
    except RuntimeError as error:
        if not is_out_of_memory(error) or len(units) == 1:
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = len(units) // 2
        report.splits += 1
        log.warning("out of memory with %d units: splitting the tile in two", len(units))
        return render_splitting(model, units[:half], config, report) + render_splitting(model, units[half:], config, report)


def _scores(model: Classifier, results, config: RenderConfig, device) -> list[dict[str, float]]:
    """Colourfulness and contrast of every image; recognition on the gallery's hard views for class logits."""
    images = torch.stack([r.image for r in results])
    classes = [r.unit.index if r.unit.layer == LOGITS and r.error is None else None for r in results]
    judge = model_on(TRANSFER_MODEL, device) if any(k is not None for k in classes) and model.channels == 3 \
        and len(model.classes) == 1000 else None  # unit_quality checks that the class lists are the same
    return unit_quality(images, classes, seen_size(config), model, judge, views=GALLERY_VIEWS, fast=True)


def render_tile(tile: Tile, threads: int = 0, wait_for_others: float = 3600.0) -> TileReport:
    """Render the tile's pending units and write them to the store. Units another run holds are
    waited for, then rendered only if that run did not finish them."""
    began = time.perf_counter()
    if threads:
        torch.set_num_threads(threads)
    device = devices.current()
    report = TileReport(tile.name, device=str(device))
    store = Store(tile.store)
    index = {key: i for i, key in enumerate(tile.keys)}
    remaining = list(tile.keys)
    try:
        for wait in (0.0, wait_for_others):
            if not remaining:
                break
            stopping.check()
            with store.lock_units(remaining, wait=wait, check=stopping.check) as held:
                todo = []
                for key in held:
                    i = index[key]
                    # verify: the planner sent a corrupt unit here to be re-rendered, not to be called cached
                    done = store.is_done(tile.paths[i], key, verify=True)
                    (report.cached.append(tile.units[i]) if done else todo.append(i))
                remaining = [key for key in remaining if key not in held]
                if todo:
                    _render_and_write(tile, todo, device, store, report)
    except stopping.Stopped:  # a stop was asked: what is not written stays pending
        finished = set(report.rendered) | set(report.cached) | set(report.failed)
        report.stopped = [unit for unit in tile.units if unit not in finished]
        remaining = []
    for key in remaining:  # still locked elsewhere after waiting: leave them pending
        report.failed[tile.units[index[key]]] = "locked by another run"
    report.total_s = time.perf_counter() - began
    return report


def writers() -> int:
    """Threads that write a tile's units: media encoding is CPU work the finished optimisation leaves idle
    cores for. One when a fault point is armed, so a planned kill lands at a reproducible unit."""
    return 1 if faults.armed() else min(4, devices.cpu_threads(1))


def _render_and_write(tile: Tile, todo: list[int], device, store: Store, report: TileReport) -> None:
    model = model_on(tile.model, device)
    try:
        write_filters(store, model_dir(tile.model), model)
    except OSError as error:  # optional: the next tile or run writes it; the units' own writes say more
        log.warning("filters.png could not be written: %s", error.strerror or error)
    config = RenderConfig.from_dict(tile.settings)
    units = [unit_from_spec(tile.units[i]) for i in todo]
    started = time.perf_counter()
    results = render_splitting(model, units, config, report)
    scores = _scores(model, results, config, device) if tile.scores else [{} for _ in results]
    report.render_s += time.perf_counter() - started
    started = time.perf_counter()

    def write(i: int, result, unit_scores) -> None:
        stopping.check()  # finish the units in hand, start no other
        fill = unit_filler(result, key=tile.keys[i], model=tile.model, label=tile.labels[i], settings=tile.settings,
                           scores=unit_scores, device=str(device), tile_units=len(todo))
        store.write_unit(tile.paths[i], fill)

    stopped: stopping.Stopped | None = None
    with ThreadPoolExecutor(max_workers=writers(), thread_name_prefix="featvis-write") as pool:
        pending = []
        for i, result, unit_scores in zip(todo, results, scores):
            if result.error:
                report.failed[tile.units[i]] = result.error
            else:
                pending.append((i, pool.submit(write, i, result, unit_scores)))
        for i, future in pending:  # in the tile's order
            try:
                future.result()
                report.rendered.append(tile.units[i])
            except stopping.Stopped as stop:
                stopped = stop
            except OSError as error:  # a full disk, a read-only store: this unit failed, with its reason
                report.failed[tile.units[i]] = f"could not be written: {error.strerror or error}"
                log.warning("%s: could not be written: %s", tile.units[i], error.strerror or error)
    report.write_s += time.perf_counter() - started
    if stopped is not None:
        raise stopped
