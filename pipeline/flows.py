"""The Prefect flow: plan -> tiles -> one task per tile on the job's task runner -> manifest -> site.

The store, not Prefect's result cache, decides what is done (a unit is done when its folder holds a
verified meta.json), so a stopped, crashed or extended job resumes where it was. A tile that still fails
after its retries leaves its units pending and the rest of the job completes.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from prefect import flow, get_run_logger, task
from prefect.client.orchestration import get_client
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed
from tqdm import tqdm

from featvis_core import load_model

from . import devices, extras
from .jobs import JobSpec, RunnerSpec, load_job
from .manifest import Manifest, write_model_card
from .plan import Plan, Tile, make_plan
from .store import Store
from .tiles import render_tile

_planning_models: dict[str, Any] = {}


def plan_job(job_name: str, job: JobSpec) -> Plan:
    """Plan with the model's architecture (weights only where they are local: nothing downloaded)."""
    if job.model not in _planning_models:
        _planning_models[job.model] = load_model(job.model, pretrained=False)
    return make_plan(job_name, job, _planning_models[job.model])


@contextmanager
def shared_api_url(spec: RunnerSpec) -> Iterator[None]:
    """Worker processes (Dask, Ray) must report to this run's Prefect API. A temporary server's address
    lives only in this process's settings, so export it for the workers the runner starts."""
    if spec.kind == "threads" or os.environ.get("PREFECT_API_URL"):
        yield
        return
    with get_client(sync_client=True) as client:
        os.environ["PREFECT_API_URL"] = str(client.api_url)
    try:
        yield
    finally:
        os.environ.pop("PREFECT_API_URL", None)


@dataclass(frozen=True)
class Runner:
    """A job's Prefect task runner, how many workers it has, and torch threads per worker (0: default)."""

    task_runner: Any
    workers: int
    threads: int = 0


def make_runner(spec: RunnerSpec) -> Runner:
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
    from prefect.task_runners import ThreadPoolTaskRunner

    workers = devices.worker_count(spec.workers)
    return Runner(ThreadPoolTaskRunner(max_workers=workers), workers,
                  0 if devices.gpu_count() else devices.cpu_threads(workers))


@task(name="render-tile", task_run_name="{tile.layer} tile {tile.index}", cache_policy=None)
def render_tile_task(tile: Tile, threads: int = 0) -> dict[str, Any]:
    report = render_tile(tile, threads)
    get_run_logger().info(
        "%s: %d rendered, %d cached, %d failed in %.1f s (render %.1f s on %s)", report.tile, len(report.rendered),
        len(report.cached), len(report.failed), report.total_s, report.render_s, report.device,
    )
    return asdict(report)


def _markdown_summary(job: str, summary: dict[str, Any]) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in summary.items())
    return f"# featvis atlas: {job}\n\n| | |\n|---|---|\n{rows}\n"


@flow(name="featvis-atlas", flow_run_name="{job}")
def atlas(job: str, flows: str = "flows.yaml", site: str | None = None) -> dict[str, Any]:
    """Render every pending unit of `job` from `flows` into its store; optionally build the site."""
    logger = get_run_logger()
    began = time.perf_counter()
    spec = load_job(flows, job)
    plan = plan_job(job, spec)
    store = Store(spec.store)
    swept = store.sweep()
    if swept:
        logger.info("removed %d partial files left by an interrupted run", swept)
    write_model_card(store, plan)
    pending = plan.pending(store, verify=True)
    manifest = Manifest(plan, store, pending)
    manifest.save()
    tiles = plan.tiles(pending)
    logger.info("%s: %d units, %d cached, %d to render in %d tiles", job, len(plan.units),
                len(plan.units) - len(pending), len(pending), len(tiles))
    rendered = failed = 0
    render_s = task_s = 0.0
    workers = 1
    if tiles:
        runner = make_runner(spec.runner)
        workers = runner.workers
        retrying = render_tile_task.with_options(retries=spec.retries, retry_delay_seconds=1)
        progress = create_progress_artifact(0.0, key=f"featvis-{_slug(job)}-progress", description=f"{job}: tiles done")
        with shared_api_url(spec.runner), runner.task_runner, tqdm(total=len(pending), desc=job, unit="unit") as bar:
            submit = runner.task_runner.submit
            futures = {submit(retrying, {"tile": tile, "threads": runner.threads}): tile for tile in tiles}
            for done, future in enumerate(as_completed(list(futures)), start=1):
                tile = futures[future]
                future.wait()
                state = future.state
                if state.is_completed():
                    report = future.result()
                    # cached: finished meanwhile by another run sharing the store
                    manifest.record(report["rendered"] + report["cached"], report["failed"])
                    rendered += len(report["rendered"])
                    failed += len(report["failed"])
                    render_s += report["render_s"]
                    task_s += report["total_s"]
                else:
                    reason = f"tile failed after {spec.retries} retries: {_one_line(state)}"
                    # units the tile wrote before it failed are done: the store, not the task, says so
                    written = [u for u, p, k in zip(tile.units, tile.paths, tile.keys) if store.is_done(p, k, verify=True)]
                    manifest.record(written, {unit: reason for unit in tile.units if unit not in written})
                    rendered += len(written)
                    failed += len(tile.units) - len(written)
                    logger.error("%s: %s", tile.name, reason)
                manifest.save()
                bar.update(len(tile.units))
                update_progress_artifact(progress, 100.0 * done / len(tiles))
    extra = None
    if extras.wanted(spec):  # dataset examples, explain pages, circuit links, zoom dives (pipeline/extras.py)
        extra_runner = make_runner(spec.runner)
        try:
            with shared_api_url(spec.runner), extra_runner.task_runner:
                extra = extras.run_extras(job, spec, plan, store, extra_runner.task_runner)
        except Exception as error:  # noqa: BLE001 - the rendered units stand; the next run retries the extras
            logger.error("%s: extras failed: %s", job, _one_line_error(error))
            extra = {"error": _one_line_error(error)}
    write_model_card(store, plan)  # again: the workers may have added filters.png
    wall = time.perf_counter() - began
    summary = {
        "job": job, "units": len(plan.units), "rendered": rendered, "cached": len(plan.units) - len(pending),
        "failed": failed, "tiles": len(tiles), "wall_s": round(wall, 2), "render_s": round(render_s, 2),
        "task_s": round(task_s, 2),
        # Flow time not spent inside tile tasks (planning, Prefect's task runs and API calls, manifests),
        # per tile; exact with one worker, an estimate with several.
        "overhead_per_tile_s": round((wall - task_s / workers) / len(tiles), 3) if tiles else 0.0,
        "units_per_s": round(rendered / wall, 3) if wall else 0.0,
        "manifest": str(store.manifest_path(job)),
    }
    if extra is not None:
        summary["extras"] = extra
    create_markdown_artifact(_markdown_summary(job, summary), key=f"featvis-{_slug(job)}-summary")
    logger.info("%s done: %d rendered, %d cached, %d failed in %.1f s", job, rendered, summary["cached"], failed, wall)
    site_dir = site or (str(spec.site) if spec.site else None)
    if site_dir:
        summary["site"] = build_site(spec.store, Path(site_dir))
    return summary


def build_site(store: Path, out: Path) -> str:
    from featvis_site.cli import main as site_main

    code = site_main(["build", "--store", str(store), "--out", str(out)])
    if code:
        raise RuntimeError(f"site build failed with exit code {code}")
    return str(out)


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower())


def _one_line_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).strip().splitlines()[-1][:300] if str(error).strip() else ''}"


def _one_line(state) -> str:
    message = state.message or state.name
    return message.strip().splitlines()[-1][:300]
