"""Serve jobs as Prefect deployments: scheduled ones on their cron, others for manual runs.

Needs a Prefect server (`prefect server start`, then `PREFECT_API_URL=http://127.0.0.1:4200/api`):
the temporary server a plain `featvis run` starts does not keep schedules.
"""

from __future__ import annotations

from pathlib import Path

from featvis_core import FeatvisError

from .jobs import load_jobs
from .terminal import echo


def serve_jobs(flows: Path, extra: list[str]) -> int:
    from prefect import serve
    from prefect.settings import PREFECT_API_URL

    from .flows import atlas, make_runner

    jobs = load_jobs(flows)
    unknown = [name for name in extra if name not in jobs]
    if unknown:
        raise FeatvisError(f"{flows}: no job {unknown[0]!r}; jobs: {', '.join(jobs)}")
    chosen = [name for name, job in jobs.items() if job.cron or name in extra]
    if not chosen:
        raise FeatvisError(f"{flows}: no job has a cron; name jobs to serve with --job NAME")
    if not PREFECT_API_URL.value():
        raise FeatvisError("featvis deploy needs a Prefect server: run `prefect server start` and set "
                           "PREFECT_API_URL=http://127.0.0.1:4200/api")
    flows_path = str(Path(flows).resolve())
    deployments = [
        atlas.with_options(task_runner=make_runner(jobs[name].runner).task_runner).to_deployment(
            name=name, cron=jobs[name].cron, parameters={"job": name, "flows": flows_path},
            description=jobs[name].description or f"featvis atlas job {name}")
        for name in chosen
    ]
    for name in chosen:
        when = f"on cron {jobs[name].cron!r}" if jobs[name].cron else "on demand"
        echo(f"serving featvis-atlas/{name} {when}")  # a cron is free text: escaped
    serve(*deployments)
    return 0
