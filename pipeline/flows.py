"""The Prefect flow: plan -> tiles -> one task per tile on the job's task runner -> manifest -> site.

The store, not Prefect's result cache, decides what is done (a unit is done when its folder holds a
verified meta.json), so a stopped, crashed or extended job resumes where it was. A tile that still fails
after its retries leaves its units pending and the rest of the job completes.
"""

from __future__ import annotations

import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.exceptions import TerminationSignal
from prefect.context import FlowRunContext
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from tqdm import tqdm

from featvis_core import FeatvisError, load_model

from . import devices, extras, stopping
from .budget import check_plan
from .jobs import JobSpec, RunnerSpec, load_job
from .manifest import Manifest, write_model_card
from .plan import Plan, Tile, make_plan
from .store import Store
from .storeformat import StoreFormatError
from .terminal import printable
from .tiles import render_tile

STOP_GRACE_S = 30.0  # a running tile stops at its next step; this only bounds a step that never ends

_planning_models: dict[str, Any] = {}


def plan_job(job_name: str, job: JobSpec) -> Plan:
    """Plan with the model's architecture (weights only where they are local: nothing downloaded)."""
    if job.model not in _planning_models:
        _planning_models[job.model] = load_model(job.model, pretrained=False)
    return make_plan(job_name, job, _planning_models[job.model])


@dataclass(frozen=True)
class Runner:
    """A job's Prefect task runner, how many workers it has, and torch threads per worker (0: default)."""

    task_runner: Any
    workers: int
    threads: int = 0


def make_runner(spec: RunnerSpec) -> Runner:
    from .preflight import check_runner

    check_runner(spec)  # a one-line FeatvisError when prefect-ray / prefect-dask is missing
    if spec.kind == "dask":
        from prefect_dask import DaskTaskRunner

        if spec.address:
            return Runner(DaskTaskRunner(address=spec.address), spec.workers or 1)
        if spec.cuda:
            return Runner(DaskTaskRunner(cluster_class="dask_cuda.LocalCUDACluster"), devices.gpu_count() or 1)
        workers = spec.workers or 2
        cluster = {"n_workers": workers, "threads_per_worker": 1, "processes": True, "dashboard_address": None}
        return Runner(DaskTaskRunner(cluster_kwargs=cluster), workers, devices.cpu_threads(workers))
    if spec.kind == "ray":
        from prefect_ray import RayTaskRunner

        return Runner(RayTaskRunner(address=spec.address) if spec.address else RayTaskRunner(), spec.workers or 1)
    workers = devices.worker_count(spec.workers)
    return Runner(ThreadPoolTaskRunner(max_workers=workers), workers,
                  0 if devices.gpu_count() else devices.cpu_threads(workers))


def retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry_condition_fn: retry a crash (out of memory, a lost worker, a full disk), never a user
    error (a bad layer, a store that breaks its format): it would fail the same way again."""
    try:
        state.result()
    except (FeatvisError, StoreFormatError):
        return False
    except BaseException:  # noqa: BLE001 - anything else is worth another try
        return True
    return True


@task(name="render-tile", task_run_name="{tile.layer} tile {tile.index}", cache_policy=None,
      retry_condition_fn=retry_unless_user_error)
def render_tile_task(tile: Tile, threads: int = 0) -> dict[str, Any]:
    report = render_tile(tile, threads)
    get_run_logger().info(
        "%s: %d rendered, %d cached, %d failed%s in %.1f s (render %.1f s on %s)", report.tile, len(report.rendered),
        len(report.cached), len(report.failed), f", {len(report.stopped)} stopped" if report.stopped else "",
        report.total_s, report.render_s, report.device,
    )
    return asdict(report)


def _markdown_summary(job: str, summary: dict[str, Any]) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in summary.items())
    return f"# featvis atlas: {job}\n\n| | |\n|---|---|\n{rows}\n"


@flow(name="featvis-atlas", flow_run_name="{job}", task_runner=ThreadPoolTaskRunner(max_workers=1))
def atlas(job: str, flows: str = "flows.yaml", site: str | None = None) -> dict[str, Any]:
    """Render every pending unit of `job` from `flows` into its store; optionally build the site.

    The task runner is set at the call site from the job's `runner:` (`run_job`, `featvis deploy`; one thread
    when atlas is called bare).
    A stop (Ctrl-C, SIGTERM) ends the loop: tiles not started are cancelled, running ones abandon their units
    at the next step, finished units are recorded and the rest stay pending; the summary says `stopped`.
    """
    logger = get_run_logger()
    began = time.perf_counter()
    spec = load_job(flows, job)
    site_dir = site or (str(spec.site) if spec.site else None)
    if site_dir:  # refused before rendering, not after
        from .preflight import check_site_out

        check_site_out(Path(site_dir), spec.store)
    plan, store, manifest, pending = _prepare(job, spec, logger)
    tiles = plan.tiles(pending)
    runner = make_runner(spec.runner)  # its workers and torch threads; the task runner itself is the caller's
    counts, stopped = _render_tiles(job, spec, tiles, len(pending), runner, store, manifest, logger)
    extra = None if stopped else _extras(job, spec, plan, store, logger)
    try:
        write_model_card(store, plan)  # again: the workers may have added filters.png
    except OSError as error:  # a full disk: the card of _prepare stands
        logger.warning("%s: the model card could not be updated (%s)", job, error.strerror or error)
    # the last word on the manifest: a save that failed on a full disk is tried again (a failed tile's
    # partial files are gone by now), and what still fails is said in the summary, in one line
    manifest_error = manifest.try_save()
    summary = _summary(job, plan, store, manifest, pending, tiles, counts, runner, time.perf_counter() - began)
    summary.update({"stopped": stopped, "manifest_error": manifest_error,
                    **({"extras": extra} if extra is not None else {})})
    if manifest_error:
        logger.error("%s: %s; featvis status reads the store itself", job, manifest_error)
    if stopped:
        logger.warning("%s stopped by %s: %d rendered, %d left pending", job, stopping.NAMES.get(stopped, stopped),
                       summary["rendered"], summary["pending"])
        return summary
    create_markdown_artifact(_markdown_summary(job, summary), key=f"featvis-{_slug(job)}-summary")
    logger.info("%s done: %d rendered, %d cached, %d failed in %.1f s", job, summary["rendered"], summary["cached"],
                summary["failed"], summary["wall_s"])
    if site_dir:
        try:
            summary["site"] = build_site(spec.store, Path(site_dir))
        except (FeatvisError, OSError) as error:  # the units stand; the command line says why, in one line
            summary["site_error"] = _one_line_error(error)
    return summary


def _prepare(job: str, spec: JobSpec, logger: Any) -> tuple[Plan, Store, Manifest, list]:
    """Plan the job, check it fits the device and the store's folders, sweep what a killed run left, and
    record which units are pending in a fresh manifest."""
    from .preflight import check_writable

    plan = plan_job(job, spec)
    costs = check_plan(plan)
    check_writable(spec.store)  # a read-only or full store: one line before any unit (featvis deploy's runs too)
    store = Store(spec.store)
    store.check_folders(plan.folders)
    swept = store.sweep()
    if swept:
        logger.info("removed %d partial files left by an interrupted run", swept)
    write_model_card(store, plan)
    pending = plan.pending(store, verify=True)
    manifest = Manifest(plan, store, pending)
    manifest.save()
    logger.info("%s: %d units, %d cached, %d to render (%s)", job, len(plan.units), len(plan.units) - len(pending),
                len(pending), max(costs.values(), key=lambda c: c.bytes).describe() if costs else "nothing to estimate")
    return plan, store, manifest, pending


def _render_tiles(job: str, spec: JobSpec, tiles: list[Tile], pending: int, runner: Runner, store: Store,
                  manifest: Manifest, logger: Any) -> tuple[dict[str, Any], int | None]:
    """One task per tile, fanned out with `.map`; each finished tile goes into the manifest at once. Returns
    the counts and the signal that stopped the loop (None when it ran to the end)."""
    counts = {"rendered": 0, "failed": 0, "render_s": 0.0, "task_s": 0.0}
    if not tiles:
        return counts, None
    retrying = render_tile_task.with_options(retries=spec.retries, retry_delay_seconds=1)
    progress = create_progress_artifact(0.0, key=f"featvis-{_slug(job)}-progress", description=f"{job}: tiles done")
    futures = retrying.map(tiles, threads=unmapped(runner.threads))
    index = {future.task_run_id: i for i, future in enumerate(futures)}
    recorded: set[int] = set()
    with tqdm(total=pending, desc=job, unit="unit") as bar:
        try:
            for future in as_completed(list(futures)):
                i = index[future.task_run_id]
                _record(future, tiles[i], spec.retries, store, manifest, counts, logger)
                recorded.add(i)
                bar.update(len(tiles[i].units))
                update_progress_artifact(progress, 100.0 * len(recorded) / len(tiles))
        except (stopping.Stopped, KeyboardInterrupt, TerminationSignal) as interrupt:
            stopped = getattr(interrupt, "signum", None) or (signal.SIGTERM if isinstance(
                interrupt, TerminationSignal) else signal.SIGINT)
            stopping.request(stopped)
            manifest.try_save()
            # thread workers see the stop and abandon their tile at the next step; worker processes
            # (Dask, Ray) do not: their cluster is closed with the task runner, so waiting is pointless
            grace = STOP_GRACE_S if spec.runner.kind == "threads" else 1.0
            _wind_down(futures, tiles, recorded, spec.retries, store, manifest, counts, logger, grace)
            return counts, stopped
    return counts, None


def _extras(job: str, spec: JobSpec, plan: Plan, store: Store, logger: Any) -> dict[str, Any] | None:
    """Dataset examples, explain pages, circuit links and dives (pipeline/extras.py), on the flow's own task
    runner. A failure leaves the rendered units standing; the next run retries the extras."""
    if not extras.wanted(spec):
        return None
    try:
        return extras.run_extras(job, spec, plan, store, FlowRunContext.get().task_runner)
    except Exception as error:  # noqa: BLE001 - reported in the summary, the run exits 1
        logger.error("%s: extras failed: %s", job, _one_line_error(error))
        return {"error": _one_line_error(error)}


def _summary(job: str, plan: Plan, store: Store, manifest: Manifest, pending: list, tiles: list[Tile],
             counts: dict[str, Any], runner: Runner, wall: float) -> dict[str, Any]:
    return {
        "job": job, "units": len(plan.units), "rendered": counts["rendered"], "cached": len(plan.units) - len(pending),
        "failed": counts["failed"], "tiles": len(tiles), "wall_s": round(wall, 2),
        "render_s": round(counts["render_s"], 2), "task_s": round(counts["task_s"], 2),
        # Flow time not spent inside tile tasks (planning, Prefect's task runs and API calls, manifests),
        # per tile; exact with one worker, an estimate with several.
        "overhead_per_tile_s": round((wall - counts["task_s"] / runner.workers) / len(tiles), 3) if tiles else 0.0,
        "units_per_s": round(counts["rendered"] / wall, 3) if wall else 0.0,
        "manifest": str(store.manifest_path(job)),
        "pending": sum(state == "pending" for state in manifest.state.values()),
    }


def _record(future: Any, tile: Tile, retries: int, store: Store, manifest: Manifest, counts: dict[str, Any],
            logger: Any) -> None:
    """Put a finished tile's outcome into the manifest (and save it)."""
    future.wait()  # done as a future is not yet final as a state
    state = future.state
    if state.is_completed():
        report = future.result()
        # cached: finished meanwhile by another run sharing the store; stopped units stay pending
        manifest.record(report["rendered"] + report["cached"], report["failed"])
        counts["rendered"] += len(report["rendered"])
        counts["failed"] += len(report["failed"])
        counts["render_s"] += report["render_s"]
        counts["task_s"] += report["total_s"]
    else:
        reason = f"tile failed after {retries} retries: {_one_line(state)}"
        # units the tile wrote before it failed are done: the store, not the task, says so
        written = [u for u, p, k in zip(tile.units, tile.paths, tile.keys) if store.is_done(p, k, verify=True)]
        manifest.record(written, {unit: reason for unit in tile.units if unit not in written})
        counts["rendered"] += len(written)
        counts["failed"] += len(tile.units) - len(written)
        logger.error("%s: %s", tile.name, reason)
    problem = manifest.try_save()
    if problem:  # tried again at the end of the run
        logger.warning("%s: %s", tile.name, problem)


def _wind_down(futures: Any, tiles: list[Tile], recorded: set[int], retries: int, store: Store, manifest: Manifest,
               counts: dict[str, Any], logger: Any, grace: float = STOP_GRACE_S) -> None:
    """After a stop: cancel the tiles not started, give the running ones `grace` seconds to abandon their
    units (they stop at their next step), and record what they finished."""
    running = []
    for i, future in enumerate(futures):
        if i in recorded:
            continue
        cancel = getattr(getattr(future, "wrapped_future", None), "cancel", None)
        if not (cancel and cancel()):
            running.append(i)
    deadline = time.monotonic() + grace
    for i in running:
        try:
            futures[i].wait(timeout=max(0.0, deadline - time.monotonic()))
            if futures[i].state.is_final():
                _record(futures[i], tiles[i], retries, store, manifest, counts, logger)
                continue
        except Exception:  # noqa: BLE001 - a tile that cannot be waited for: the store says what it wrote
            pass
        tile = tiles[i]  # still running elsewhere (a worker process): units it wrote are done, the rest pending
        written = [u for u, p, k in zip(tile.units, tile.paths, tile.keys) if store.is_done(p, k, verify=True)]
        manifest.record(written, {})
        counts["rendered"] += len(written)
    manifest.try_save()


def run_job(job: str, flows: str, site: str | None = None) -> dict[str, Any]:
    """Run the flow on the job's own task runner (threads, Dask or Ray), chosen here at the call site."""
    spec = load_job(flows, job)
    return atlas.with_options(task_runner=make_runner(spec.runner).task_runner)(job=job, flows=flows, site=site)


def build_site(store: Path, out: Path) -> str:
    from featvis_site.cli import main as site_main

    code = site_main(["build", "--store", str(store), "--out", str(out)])
    if code:  # its reason is the line featvis site printed
        raise FeatvisError(f"the site build into {out} failed (exit code {code}); the rendered units stand")
    return str(out)


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower())


def _one_line_error(error: BaseException) -> str:
    text = str(error).strip()
    return printable(f"{type(error).__name__}: {text.splitlines()[-1] if text else ''}", 300)


def _one_line(state) -> str:
    message = (state.message or state.name).strip()
    return printable(message.splitlines()[-1] if message else "", 300)
