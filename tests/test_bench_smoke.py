"""Smoke test of the renderer benchmark at tiny sizes: it runs end to end and writes its table.
The benchmark itself (bench/README.md) never runs in CI; no timing is asserted here."""

import importlib.util
import json

import pytest
import torch

from bench import bench_render
from bench.common import activation, spread, step_flops, unit_sets
from bench.peers import LucentInput, plain_network
from featvis_core.models import IMAGENET_MEAN, IMAGENET_STD


def test_units_are_spread_over_each_layer():
    sets = unit_sets(16)
    assert [len(units) for units in sets.values()] == [16, 16, 16]
    assert spread(16, 1000)[0] == 31 and spread(16, 1000)[-1] == 968
    assert max(u.index for u in sets["blocks.4"]) < 40 and len({u.index for u in sets["blocks.4"]}) == 16


def test_lucent_wrapper_feeds_the_model_its_own_normalisation(lite0):
    net = plain_network(lite0)
    wrapped = LucentInput(net, lite0.mean, lite0.std)
    assert "_blocks" in dict(wrapped.named_children())  # Lucent's layer names stay `_blocks_10`
    x = torch.rand(1, 3, 64, 64)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(wrapped((x - mean) / std), net((x - 0.5) / 0.5), atol=1e-4, rtol=1e-4)


def test_step_flops_are_counted_and_truncation_saves(lite0):
    shallow, deep = step_flops(lite0, "blocks.4", 1, 64), step_flops(lite0, "logits", 1, 64)
    assert 0 < shallow < deep


def test_tiny_benchmark_writes_results_and_table(lite0, tmp_path):
    methods = ["seed000", "featvis-lucid"]
    if importlib.util.find_spec("lucent") and importlib.util.find_spec("kornia"):
        methods.insert(0, "lucent")
    bench_render.main(["quality", "--units", "1", "--steps", "2", "--size", "48", "--sets", "blocks.4",
                       "--methods", ",".join(methods), "--out", str(tmp_path)])
    results = json.loads((tmp_path / "results.json").read_text())
    rows = results["quality"]["blocks.4"]["methods"]
    assert set(rows) == set(methods)
    assert all(row["activation_mean"] == pytest.approx(sum(row["activation"])) for row in rows.values())
    table = (tmp_path / "table.md").read_text()
    assert "featvis-lucid" in table and "mean / Lucent (same units)" in table
    assert (tmp_path / "sheets" / "blocks.4_featvis-lucid.png").exists()


def test_shared_evaluator_scores_each_unit(lite0):
    units = unit_sets(2)["blocks.10"]
    scores = activation(lite0, torch.full((2, 3, 32, 32), 0.5), units)
    assert scores.shape == (2,) and torch.isfinite(scores).all()


def test_frontier_times_whole_commands_and_judges_their_pngs(tmp_path):
    """bench/frontier.py end to end at a toy size: a real `featvis render` process, its PNG judged on
    hard views, the table written. No timing is asserted."""
    from bench import frontier

    frontier.main(["--methods", "fast", "--sets", "logits", "--units", "1", "--steps", "2", "--size", "48",
                   "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")])
    row = json.loads((tmp_path / "out" / "results.json").read_text())["sets"]["logits"]["fast"]
    assert row["units"] == 1 and row["size"] == 48 and row["wall_s"] > 0 and "--steps 2" in row["command"]
    assert 0 <= row["lite1_top5"] <= 1 and set(row["lite1_top5_by_view"]) >= {"judge", "native", "x0.5", "crop0"}
    assert row["colourfulness"] >= 0 and "| fast |" in (tmp_path / "out" / "table.md").read_text()
