"""`featvis deploy` serves a job as a Prefect deployment on a real server; a triggered run completes, and
Prefect's own CLI lists both (`prefect deployment ls`, `prefect flow-run ls`)."""

import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from conftest import ROOT, TINY_JOB

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(prefect_server, tmp_path_factory):
    """`featvis deploy` of the tiny job (with a cron) on the session's server, and one run of it triggered
    as `prefect deployment run featvis-atlas/tiny` does. The serve process lives for the module's tests."""
    tmp = tmp_path_factory.mktemp("deploy")
    flows = tmp / "flows.yaml"
    flows.write_text(TINY_JOB.format(store=tmp / "store", batch=4, extra="    cron: '0 3 * * 6'"))
    log_path = tmp / "serve.log"
    log = open(log_path, "w")
    serve = subprocess.Popen([sys.executable, "-m", "featvis_pipeline.cli", "deploy", "--flows", str(flows)], cwd=ROOT,
                             stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        from prefect.client.orchestration import get_client
        from prefect.deployments import run_deployment

        deadline = time.time() + 120
        while time.time() < deadline:
            with get_client(sync_client=True) as client:
                try:
                    deployment = client.read_deployment_by_name("featvis-atlas/tiny")
                    break
                except Exception:  # noqa: BLE001 - not registered yet
                    time.sleep(1)
            assert serve.poll() is None, log_path.read_text()[-3000:]
        else:
            pytest.fail("deployment never appeared: " + log_path.read_text()[-3000:])
        flow_run = run_deployment("featvis-atlas/tiny", timeout=600)
        yield SimpleNamespace(deployment=deployment, flow_run=flow_run, store=tmp / "store", log=log_path)
    finally:
        serve.terminate()
        serve.wait(30)


def test_deployment_run_completes(served):
    schedules = served.deployment.schedules
    assert schedules and schedules[0].schedule.cron == "0 3 * * 6"
    assert served.flow_run.state.is_completed(), (served.flow_run.state, served.log.read_text()[-3000:])
    data = json.loads((served.store / "manifests" / "tiny.json").read_text())
    assert data["counts"]["done"] == 7


def prefect_cli(url: str, *args: str) -> subprocess.CompletedProcess:
    """Prefect's own command line against the server at `url`, in a wide terminal so no name is cut."""
    env = {**os.environ, "PREFECT_API_URL": url, "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "prefect", *args], capture_output=True, text=True, env=env,
                          timeout=180)


def test_prefect_cli_lists_the_deployment_and_its_run(served, prefect_server):
    # What a Prefect user types after the README's `featvis deploy` and `prefect deployment run`: both list
    # commands send explicit nulls for the filters they leave out, which fastapi >= 0.151 refuses with a 422
    # instead of using the server's defaults (constraints.txt pins fastapi below that for this reason).
    deployments = prefect_cli(prefect_server, "deployment", "ls")
    assert deployments.returncode == 0, deployments.stdout + deployments.stderr
    assert "featvis-atlas/tiny" in deployments.stdout, deployments.stdout
    runs = prefect_cli(prefect_server, "flow-run", "ls")
    assert runs.returncode == 0, runs.stdout + runs.stderr
    row = next((line for line in runs.stdout.splitlines() if str(served.flow_run.id) in line), None)
    assert row is not None, runs.stdout
    assert served.flow_run.name in row and "COMPLETED" in row, runs.stdout


def test_deploy_without_server_or_cron_is_a_clear_error(tiny_flows):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    result = subprocess.run([sys.executable, "-m", "featvis_pipeline.cli", "deploy", "--flows", str(tiny_flows())],
                            cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2 and "no job has a cron" in result.stderr
