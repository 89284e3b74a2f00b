"""`featvis deploy` serves a job as a Prefect deployment on a real server; a triggered run completes."""

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def test_deployment_run_completes(prefect_server, tiny_flows, tmp_path):
    flows = tiny_flows(extra="    cron: '0 3 * * 6'")
    log = open(tmp_path / "serve.log", "w")
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
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        else:
            pytest.fail("deployment never appeared: " + (tmp_path / "serve.log").read_text()[-3000:])
        schedules = deployment.schedules
        assert schedules and schedules[0].schedule.cron == "0 3 * * 6"
        flow_run = run_deployment("featvis-atlas/tiny", timeout=600)
        assert flow_run.state.is_completed(), (flow_run.state, (tmp_path / "serve.log").read_text()[-3000:])
        data = json.loads((tmp_path / "store" / "manifests" / "tiny.json").read_text())
        assert data["counts"]["done"] == 7
    finally:
        serve.terminate()
        serve.wait(30)


def test_deploy_without_server_or_cron_is_a_clear_error(tiny_flows):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    result = subprocess.run([sys.executable, "-m", "featvis_pipeline.cli", "deploy", "--flows", str(tiny_flows())],
                            cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2 and "no job has a cron" in result.stderr
