"""Dataset examples, explain, circuits and the eternal zoom: core pieces and the pipeline stage, on a few
tiny images and one or two layers (no Prefect: the stage's tasks run inline)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from featvis_core.examples import CropSpec, RunningTopK, crop_box, image_id, layer_scores, scan, views_of


def test_running_top_k_matches_a_full_sort():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(50, 7, generator=generator)
    top = RunningTopK(7, k=4, bottom=2)
    for start in range(0, 50, 6):  # uneven batches
        top.update(scores[start:start + 6], torch.arange(start, min(start + 6, 50)))
    best, worst = top.lists()
    for unit in range(7):
        order = scores[:, unit].argsort(descending=True)
        assert [i for _, i in best[unit]] == order[:4].tolist()
        assert [i for _, i in worst[unit]] == order.flip(0)[:2].tolist()
    assert top.top_values.shape == (7, 4)  # state does not grow with the samples seen


def test_crops_are_reproducible_and_inside_the_image():
    spec = CropSpec(crops=5, min_scale=0.3, max_scale=0.5)
    for view in range(6):
        box = crop_box("ab" * 8, view, 300, 200, spec)
        assert box == crop_box("ab" * 8, view, 300, 200, spec)
        left, top, right, bottom = box
        assert 0 <= left < right <= 300 and 0 <= top < bottom <= 200 and right - left == bottom - top
    assert crop_box("ab" * 8, 1, 300, 200, spec) != crop_box("cd" * 8, 1, 300, 200, spec)
    assert crop_box("ab" * 8, 0, 300, 200, spec) == (50, 0, 250, 200)  # the centred square


def test_shards_move_only_near_inserted_images():
    from featvis_pipeline.examples import shard_bounds

    rng = random.Random(1)
    ids = sorted(f"{rng.getrandbits(64):016x}" for _ in range(400))
    before = {tuple(ids[a:b]) for a, b in shard_bounds(ids, 8)}
    grown = ids[:200] + [f"{rng.getrandbits(64):016x}" for _ in range(40)] + ids[200:]  # +10 % in one place
    after = {tuple(grown[a:b]) for a, b in shard_bounds(grown, 8)}
    assert sum(len(s) for s in after) == 440
    assert len(before - after) <= 3  # the shard(s) the new images landed in, plus a cap-forced neighbour
    assert len(after - before) <= 10


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Four small distinct photos-to-be: coloured noise at different scales, as PNG and JPEG."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(4):
        small = rng.integers(0, 255, (4 + 3 * i, 5 + 3 * i, 3), dtype=np.uint8)
        picture = Image.fromarray(small).resize((96 + 8 * i, 80), Image.BILINEAR)
        (root / ("sub" if i == 3 else "")).mkdir(exist_ok=True)
        picture.save(root / ("sub" if i == 3 else "") / f"img{i}.{'jpg' if i % 2 else 'png'}")
    (root / "notes.txt").write_text("not an image")
    return root


def test_scan_keeps_the_views_a_direct_forward_pass_ranks_first(lite0, folder):
    from featvis_core.examples import list_images

    paths = list_images(folder)
    assert [p.name for p in paths] == ["img0.png", "img1.jpg", "img2.png", "img3.jpg"]
    ids = [image_id(p) for p in paths]
    spec = CropSpec(crops=2)
    tops = scan(lite0, views_of(paths, ids, spec, 224, batch=5), ["blocks.4", "logits"], k=3, bottom=1)
    batches = list(views_of(paths, ids, spec, 224, batch=12))
    views = torch.cat([b[1] for b in batches])
    assert views.shape[0] == 12
    with torch.no_grad():
        features = {}
        handle = lite0.module._blocks[4].register_forward_hook(lambda m, i, o: features.setdefault("b4", o))
        logits = lite0.module(lite0.normalise(views))
        handle.remove()
    direct = {"blocks.4": layer_scores(features["b4"]), "logits": logits}
    for layer, scores in direct.items():
        best, worst = tops[layer].lists()
        for unit in (0, 5, 17):
            order = scores[:, unit].argsort(descending=True)
            assert best[unit][0][1] == int(order[0])  # sample numbers: image position * 3 + view
            assert best[unit][0][0] == pytest.approx(float(scores[order[0], unit]), rel=1e-3, abs=1e-3)
            assert worst[unit][0][1] == int(order[-1])


def test_stage_caches_shards_and_recomputes_only_new_images(lite0, folder, tmp_path):
    from featvis_core import Kind, Unit
    from featvis_pipeline import examples as ex
    from featvis_pipeline.extras_spec import ExamplesSpec
    from featvis_pipeline.store import Store

    store = Store(tmp_path / "store")
    spec = ExamplesSpec(folder=str(folder), crops=1, shard=1, top=2, negatives=1)
    units = [Unit("blocks.4", Kind.CHANNEL, 3), Unit("blocks.4", Kind.NEGATIVE, 3), Unit("logits", Kind.LOGIT, 8)]

    def plan():
        return ex.plan_examples(spec, store, "efficientnet_lite0", lite0.fingerprint, "efficientnet_lite0", 224, units)

    first = plan()
    assert len(first.images) == 4 and first.layers == ["blocks.4", "logits"]
    for shard in ex.shard_tasks(first, store, "efficientnet_lite0", "efficientnet_lite0"):
        ex.scan_shard(shard)
    assert plan().missing == {}
    chosen = ex.unit_examples(units, ex.merge_layers(first, store, "efficientnet_lite0"))
    assert chosen["blocks.4:!3"]["top"][0][0] == -chosen["blocks.4:3"]["bottom"][0][0]
    thumbs = ex.write_thumbs(first, store, chosen)
    assert thumbs and all((store.root / path).is_file() for path in thumbs)
    assert all(Image.open(store.root / path).size == (128, 128) for path in thumbs)

    Image.new("RGB", (90, 90), (200, 30, 30)).save(folder / "sub" / "new.png")
    try:
        second = plan()
        new_shards = {s for s, (a, b) in enumerate(second.bounds) if any(i.rel == "sub/new.png" for i in second.images[a:b])}
        assert set(second.missing) == new_shards  # only the shard holding the new image is computed
        assert second.key != first.key
    finally:
        (folder / "sub" / "new.png").unlink()


def test_attribution_rows_do_not_depend_on_batch_mates(lite0):
    from featvis_core.circuits import attribution, strongest

    inputs = torch.rand(3, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    together = attribution(lite0, "blocks.10", "blocks.4", inputs, [1, 7, 1])
    alone = attribution(lite0, "blocks.10", "blocks.4", inputs[1:2], [7])
    assert together.shape == (3, 40) and torch.isfinite(together).all()
    assert torch.allclose(together[1], alone[0], rtol=0.05, atol=1e-3 * together.abs().max())
    links = strongest(together, [0, 2, 4, 6], 2)
    assert all(c in (0, 2, 4, 6) for row in links for c, _ in row)
    assert all(abs(w) <= 1.0 for row in links for _, w in row) and max(abs(links[0][0][1]), 0) == 1.0


def test_eternal_zoom_loops_without_a_seam(lite0):
    from featvis_core.zoom import ZoomConfig, eternal_zoom, seamless, zoom_in

    frames = torch.randint(0, 255, (20, 8, 8, 3), dtype=torch.uint8)
    looped = seamless(frames, 4)
    assert looped.shape[0] == 16
    # the last frame is mostly the frame that followed the dropped start, so the loop continues smoothly
    assert (looped[-1].float() - frames[3].float()).abs().mean() < (frames[19].float() - frames[3].float()).abs().mean()
    image = torch.zeros(1, 3, 16, 16)
    image[..., 7:9, 7:9] = 1
    assert zoom_in(image, 1.5)[..., 6:10, 6:10].sum() > image[..., 6:10, 6:10].sum()  # the centre grows
    [movie] = eternal_zoom(lite0, [8], ZoomConfig(size=32, steps=14, warmup=2, every=2, crossfade=2))
    assert movie.shape == (10, 32, 32, 3) and movie.dtype == torch.uint8


def test_explain_image_gives_predictions_saliency_and_maps(lite0, tmp_path, capsys):
    from featvis_core.explain import explain
    from featvis_pipeline.cli import main

    picture = Image.fromarray(np.random.default_rng(3).integers(0, 255, (64, 80, 3), dtype=np.uint8))
    found = explain(lite0, picture, "blocks.10", channels=4, among=[1, 2, 3, 9, 70])
    assert len(found.top5) == 5 and abs(sum(p for _, _, p in found.top5)) <= 1.0
    assert found.top5 == sorted(found.top5, key=lambda t: -t[2])
    assert found.saliency.shape == (224, 224) and 0 <= found.smoothgrad.min() and found.smoothgrad.max() <= 1
    assert [c for c, _ in found.channels] and {c for c, _ in found.channels} <= {1, 2, 3, 9, 70}
    assert found.maps.shape[0] == 4
    picture.save(tmp_path / "x.png")
    assert main(["explain", str(tmp_path / "x.png"), "--layer", "blocks.4", "--channels", "2",
                 "--out", str(tmp_path / "out")]) == 0
    assert "top-5" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"view.png", "saliency.png", "smoothgrad.png"}
    assert main(["explain", str(tmp_path / "missing.png")]) == 2


def test_bad_extras_settings_fail_before_any_work(prefect_server, lite0, tmp_path):
    # prefect_server first: importing prefect (via featvis_pipeline.extras) freezes its settings, and later
    # tests of this session must see the session server's PREFECT_API_URL
    from conftest import TINY_JOB, featvis

    from featvis_core import FeatvisError
    from featvis_pipeline import extras
    from featvis_pipeline.jobs import load_job
    from featvis_pipeline.plan import make_plan

    flows = tmp_path / "flows.yaml"
    base = TINY_JOB.format(store=tmp_path / "store", batch=4, extra="")
    for extra, message in [
        ("    examples: {folder: skimage, explain_layer: blocks.99}\n", "unknown layer 'blocks.99'"),
        ("    zoom: {logits: [not a class]}\n", "unknown class 'not a class'"),
        ("    examples: {folder: skimage, crops: -1}\n", "examples.crops"),
        ("    examples: {folder: skimage, min_scale: 0.5, max_scale: 0.3}\n", "below min_scale"),
    ]:
        flows.write_text(base + extra)
        with pytest.raises(FeatvisError, match=message):
            job = load_job(flows, "tiny")
            extras.check(job, make_plan("tiny", job, lite0))
    flows.write_text(base + "    examples: {folder: %s}\n" % (tmp_path / "nowhere"))
    result = featvis("run", "tiny", "--flows", str(flows))
    assert result.returncode == 2 and "is not a folder" in result.stderr, result.stderr[-500:]
    assert not (tmp_path / "store" / "manifests").exists()  # nothing rendered


def test_an_unreadable_file_is_skipped_not_fatal(folder, tmp_path):
    import shutil

    broken = tmp_path / "images"
    shutil.copytree(folder, broken)
    (broken / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    from featvis_core.examples import list_images

    paths = list_images(broken)
    ids = [image_id(p) for p in paths]
    numbers = torch.cat([n for n, _ in views_of(paths, ids, CropSpec(crops=1), 32, batch=3)]).tolist()
    skipped = [p.name for p in paths].index("truncated.png")
    assert numbers == [n for n in range(2 * len(paths)) if n // 2 != skipped]
