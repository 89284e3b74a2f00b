"""Numerical and resource faults through the pipeline (real Prefect flow runs, in this process):
NaN/Inf units fail alone with their reason; out of memory splits the tile, and fails it only when one
unit alone does not fit; a full disk fails its tile without leaving a partial file. The next run then
renders exactly the units that failed."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch

from featvis_pipeline.cli import main

pytestmark = pytest.mark.slow


def manifest(store: Path) -> dict:
    return json.loads((store / "manifests" / "tiny.json").read_text())


def states(store: Path) -> dict[str, tuple[str, str | None]]:
    return {u["unit"]: (u["state"], u["error"]) for u in manifest(store)["units"]}


def leftovers(store: Path) -> list[str]:
    """Partial writes: hidden temporary files or folders, or a visible unit folder without meta.json."""
    found = [str(p) for p in store.rglob("*") if p.name.endswith(".tmp")]
    found += [str(p) for p in (store / "efficientnet_lite0").glob("*/*") if p.is_dir() and not (p / "meta.json").exists()]
    return found


def run(capsys, flows: Path) -> tuple[int, str]:
    code = main(["run", "tiny", "--flows", str(flows)])
    out = capsys.readouterr().out.strip().splitlines()
    return code, out[-1] if out else ""


def test_nan_and_inf_units_fail_alone_with_their_reason(prefect_server, tiny_flows, tmp_path, monkeypatch, capsys):
    import importlib

    render_module = importlib.import_module("featvis_core.render")  # featvis_core.render is also a function

    original = render_module.unit_scores

    def poisoned(activation, targets):  # blocks.4 channel 1 goes NaN, class 12 goes +Inf (loss -Inf)
        scores = original(activation, targets)
        scores = torch.where(targets.index == 1, torch.full_like(scores, float("nan")), scores)
        return torch.where(targets.index == 12, torch.full_like(scores, float("inf")), scores)

    monkeypatch.setattr(render_module, "unit_scores", poisoned)
    flows, store = tiny_flows(), tmp_path / "store"
    code, summary = run(capsys, flows)
    assert code == 1 and "tiny: 5 rendered, 0 cached, 2 failed" in summary
    result = states(store)
    for unit in ("blocks.4:1", "logits:12"):
        state, error = result.pop(unit)
        assert state == "failed" and error.startswith("loss became NaN or Inf at step"), (unit, error)
    assert set(result.values()) == {("done", None)}  # their tile mates (blocks.4:0, :2, logits:8) are done
    failed = {u["path"] for u in manifest(store)["units"] if u["state"] == "failed"}
    assert not any((store / path).exists() for path in failed)
    for unit in manifest(store)["units"]:
        if unit["state"] == "done":
            meta = json.loads((store / unit["path"] / "meta.json").read_text())
            assert all(v == v for v in meta["activation"]["history"]), f"{unit['unit']}: NaN leaked into a done unit"
    assert leftovers(store) == []

    monkeypatch.undo()
    code, summary = run(capsys, flows)
    assert code == 0 and "tiny: 2 rendered, 5 cached, 0 failed" in summary
    assert manifest(store)["counts"] == {"done": 7, "pending": 0, "failed": 0}


def test_out_of_memory_splits_and_full_disk_fails_the_tile_cleanly(prefect_server, tiny_flows, tmp_path, monkeypatch,
                                                                   capsys):
    import featvis_core.media as media
    import featvis_pipeline.tiles as tiles

    real_render, real_mp4 = tiles.render, media.write_mp4
    attempts: list[tuple[str, int]] = []

    def small_device(model, units, config, **kwargs):
        attempts.append((units[0].layer, len(units)))
        if units[0].layer == "logits" or len(units) > 1:  # logits do not fit even alone
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_render(model, units, config, **kwargs)

    def full_disk(path, frames, **kwargs):
        if path.parent.name.startswith(".c0006@"):  # blocks.10 channel 6: after image.png and the webps
            real_mp4(path, frames, **kwargs)
            Path(path).write_bytes(Path(path).read_bytes()[:100])  # a partial video on disk...
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))  # ...and the disk is full
        return real_mp4(path, frames, **kwargs)

    monkeypatch.setattr(tiles, "render", small_device)
    monkeypatch.setattr(media, "write_mp4", full_disk)
    flows, store = tiny_flows(), tmp_path / "store"
    code, summary = run(capsys, flows)
    assert code == 1 and "tiny: 4 rendered, 0 cached, 3 failed" in summary, summary
    assert ("blocks.4", 3) in attempts and ("blocks.4", 1) in attempts  # split 3 -> 1 + 2 -> 1 + 1
    result = states(store)
    assert {u: s for u, (s, _) in result.items()} == {
        "blocks.4:0": "done", "blocks.4:1": "done", "blocks.4:2": "done",
        "blocks.10:5": "done",  # written before the disk filled up: kept, and done in the manifest
        "blocks.10:6": "failed", "logits:8": "failed", "logits:12": "failed"}
    assert "No space left on device" in result["blocks.10:6"][1], result["blocks.10:6"]
    assert "out of memory" in result["logits:8"][1], result["logits:8"]
    assert leftovers(store) == []
    assert not (store / manifest(store)["units"][4]["path"]).exists()

    monkeypatch.undo()
    code, summary = run(capsys, flows)
    assert code == 0 and "tiny: 3 rendered, 4 cached, 0 failed" in summary
