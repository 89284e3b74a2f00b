"""Real Prefect flow runs of a tiny job: render, cache, extend, fail a tile, split on OOM, Dask."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import featvis

pytestmark = pytest.mark.slow


def manifest(store, job="tiny"):
    return json.loads((store / "manifests" / f"{job}.json").read_text())


def images(store, data):
    return {u["unit"]: np.asarray(Image.open(store / u["path"] / "image.png"), dtype=np.int16) for u in data["units"]}


def test_run_caches_and_extends(prefect_server, tiny_flows, tmp_path):
    flows = tiny_flows()
    first = featvis("run", "tiny", "--flows", str(flows))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "7 rendered, 0 cached, 0 failed" in first.stdout
    data = manifest(tmp_path / "store")
    assert data["counts"] == {"done": 7, "pending": 0, "failed": 0}
    unit = tmp_path / "store" / data["units"][0]["path"]
    assert {p.name for p in unit.iterdir()} == {"image.png", "image.webp", "thumb.webp", "anim.mp4", "meta.json"}
    assert (tmp_path / "store/efficientnet_lite0/filters.png").exists()
    model_card = json.loads((tmp_path / "store/efficientnet_lite0/model.json").read_text())
    assert model_card["filters"] == "filters.png" and len(model_card["classes"]) == 1000

    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "store").rglob("meta.json")}
    again = featvis("run", "tiny", "--flows", str(flows))
    assert again.returncode == 0 and "all 7 units are cached" in again.stdout
    assert mtimes == {p: p.stat().st_mtime_ns for p in (tmp_path / "store").rglob("meta.json")}

    flows.write_text(flows.read_text().replace("logits: [hen, 12]", "logits: [hen, 12, pelican]"))
    extended = featvis("run", "tiny", "--flows", str(flows))
    assert extended.returncode == 0, extended.stderr[-3000:]
    assert "1 rendered, 7 cached, 0 failed" in extended.stdout

    status = featvis("status", "tiny", "--flows", str(flows))
    assert "8/8 units done" in status.stdout


def test_failed_tile_leaves_its_units_pending(prefect_server, tiny_flows, tmp_path, monkeypatch):
    import featvis_pipeline.flows as flows_module
    from featvis_pipeline.tiles import render_tile

    def flaky(tile, threads=0):
        if tile.layer == "blocks.10":
            raise RuntimeError("simulated driver crash")
        return render_tile(tile, threads)

    monkeypatch.setattr(flows_module, "render_tile", flaky)
    summary = flows_module.atlas(job="tiny", flows=str(tiny_flows()))
    assert summary["failed"] == 2 and summary["rendered"] == 5
    data = manifest(tmp_path / "store")
    failed = [u for u in data["units"] if u["state"] == "failed"]
    assert [u["unit"] for u in failed] == ["blocks.10:5", "blocks.10:6"]
    assert "simulated driver crash" in failed[0]["error"]
    assert not any((tmp_path / "store" / u["path"]).exists() for u in failed)

    status = featvis("status", "tiny", "--flows", str(tiny_flows()))
    lines = status.stdout.splitlines()
    assert "tiny: 5/7 units done" in lines[0]
    assert [line.split()[0] for line in lines[1:4]] == ["blocks.4", "blocks.10", "logits"]
    assert "s/unit" in lines[1] and "s/unit" not in lines[2]  # blocks.10's rate is unknown: nothing finished
    assert "of optimisation left on one worker" in status.stdout and "failed blocks.10:5" in status.stdout


def test_out_of_memory_halves_the_tile(tiny_flows, lite0, monkeypatch):
    import featvis_pipeline.tiles as tiles
    from featvis_pipeline.flows import plan_job
    from featvis_pipeline.jobs import load_job

    flows = tiny_flows(batch=8)
    plan = plan_job("tiny", load_job(flows, "tiny"))
    [tile] = [t for t in plan.tiles(plan.units) if t.layer == "blocks.4"]
    real = tiles.render

    def small_device(model, units, config, **kwargs):
        if len(units) > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, units, config, **kwargs)

    monkeypatch.setattr(tiles, "render", small_device)
    report = tiles.render_tile(tile)
    assert sorted(report.rendered) == ["blocks.4:0", "blocks.4:1", "blocks.4:2"] and report.splits == 2


def test_dask_run_equals_threaded_run(prefect_server, tiny_flows, tmp_path):
    threads = tiny_flows(store=tmp_path / "threads")
    result = featvis("run", "tiny", "--flows", str(threads))
    assert result.returncode == 0, result.stderr[-3000:]
    dask = tmp_path / "dask.yaml"
    dask.write_text(threads.read_text().replace(str(tmp_path / "threads"), str(tmp_path / "dask"))
                    .replace("retries: 0", "retries: 0\n  runner: {kind: dask, workers: 2}"))
    result = featvis("run", "tiny", "--flows", str(dask))
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = manifest(tmp_path / "threads"), manifest(tmp_path / "dask")
    assert [(u["unit"], u["key"], u["state"]) for u in a["units"]] == [(u["unit"], u["key"], u["state"]) for u in b["units"]]
    ia, ib = images(tmp_path / "threads", a), images(tmp_path / "dask", b)
    for unit in ia:
        assert np.abs(ia[unit] - ib[unit]).max() <= 2, unit


def test_user_errors_are_one_line_before_any_work(tiny_flows, tmp_path):
    flows = tiny_flows()
    flows.write_text(flows.read_text().replace("blocks.10: [5, 6]", "blocks.10: [5, 600]"))
    result = featvis("run", "tiny", "--flows", str(flows))
    assert result.returncode == 2
    assert result.stderr.strip() == ("featvis: error: channel 600 out of range: the layer has 112 (channels 0-111)")
    assert not (tmp_path / "store").exists()
    missing = featvis("run", "nojob", "--flows", str(flows))
    assert missing.returncode == 2 and "no job 'nojob'; jobs: tiny" in missing.stderr


def test_a_user_error_is_not_retried_a_crash_is(prefect_server, monkeypatch):
    """retry_condition_fn: FeatvisError (a bad layer...) fails at once; a crash gets the job's retries."""
    import featvis_pipeline.flows as flows_module
    from featvis_core import FeatvisError
    from featvis_pipeline.plan import Tile

    tile = Tile("j", "efficientnet_lite0", "store", "blocks.4", ("blocks.4:0",), ("a" * 64,),
                ("efficientnet_lite0/blocks.4/c0000@aaaaaaaaaaaa",), ("x",), {})
    for error, attempts in ((FeatvisError("unknown layer 'blocks.99'"), 1), (RuntimeError("worker lost"), 3)):
        calls = []

        def failing(tile, threads=0, error=error, calls=calls):
            calls.append(tile)
            raise error

        monkeypatch.setattr(flows_module, "render_tile", failing)
        retrying = flows_module.render_tile_task.with_options(retries=2, retry_delay_seconds=0)
        state = retrying(tile=tile, return_state=True)
        assert state.is_failed() and len(calls) == attempts, (type(error).__name__, len(calls))


def test_a_direction_goes_from_selector_to_gallery_caption(tiny_flows, tmp_path, lite0):
    """A new objective kind end to end: flows.yaml item -> plan -> render -> store -> manifest -> page."""
    import featvis_pipeline.tiles as tiles
    from featvis_pipeline.flows import plan_job
    from featvis_pipeline.jobs import load_job
    from featvis_pipeline.manifest import Manifest
    from featvis_pipeline.store import Store
    from featvis_site.build import build_site

    flows = tiny_flows()
    flows.write_text(flows.read_text().replace("blocks.4: 0-2", 'blocks.4: ["1-0.5*2", 0]'))
    plan = plan_job("tiny", load_job(flows, "tiny"))
    [tile] = [t for t in plan.tiles(plan.units) if t.layer == "blocks.4"]
    assert tile.units == ("blocks.4:1-0.5*2", "blocks.4:0")
    assert not tiles.render_tile(tile).failed
    store = Store(tmp_path / "store")
    Manifest(plan, store, [u for u in plan.units if u.unit.layer != "blocks.4"]).save()
    entry = next(u for u in manifest(tmp_path / "store")["units"] if u["kind"] == "direction")
    assert entry["caption"] == "1 − 0.5·2" and entry["path"].split("/")[-1].startswith("d")
    page = (build_site(tmp_path / "store", tmp_path / "site").site_dir / "models" / "efficientnet_lite0" / "blocks-4"
            / "index.html")
    html = next(tmp_path.glob("site/models/*/blocks*4*/index.html")).read_text() if not page.exists() else page.read_text()
    assert ">1 − 0.5·2<" in html and ">Direction<" in html
