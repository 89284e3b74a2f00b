"""A tiny ViT job (random weights, tests/model_factories.py) through the flow, the store and the gallery:
token channels, a patch neuron, a class-token unit, MLP hidden units and logits of a 10-class model, and its
layer page, lightbox and logits page in a real browser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from featvis_site.build import build_site
from featvis_site.layout import layer_page, model_page, page_url
from featvis_site.serve import serve_in_thread
from featvis_site.store_reader import read_store

pytestmark = pytest.mark.slow

VIT_JOB = """
defaults:
  store: {store}
  preset: fast
  overrides: {{size: 32, steps: 6, frames: 3, augment: {{zoom: 1.0, jitter: 2, jitter_after: 1}}}}
  batch: 8
  retries: 0
jobs:
  vit:
    model: model_factories:vit
    layers: {{"encoder.layers.*": [0, "1@1/1", "2@cls"], "encoder.layers.*.mlp.1": [3]}}
    logits: [0, 1, 2]
    scores: true
  grey:
    model: model_factories:grey
    layers: {{features.3: [0, "1@"]}}
    logits: [4]
    scores: true
"""


@pytest.fixture(scope="module")
def vit_store(prefect_server, tmp_path_factory) -> Path:
    from featvis_pipeline.flows import atlas

    root = tmp_path_factory.mktemp("vit-flow")
    flows = root / "flows.yaml"
    flows.write_text(VIT_JOB.format(store=root / "store"))
    summary = atlas(job="vit", flows=str(flows))
    assert summary["rendered"] == 2 * 3 + 2 + 3 and summary["failed"] == 0, summary
    return root / "store"


def test_grayscale_job_says_how_its_images_are_shown(vit_store: Path) -> None:
    """A 1-channel, 10-class model through the same flow: its images are stored as grayscale PNGs, its meta
    and model card say so, and its logit is scored by itself only (ImageNet's judge has other classes)."""
    import numpy as np
    from PIL import Image

    from featvis_pipeline.flows import atlas

    summary = atlas(job="grey", flows=str(vit_store.parent / "flows.yaml"))
    assert summary["rendered"] == 3 and summary["failed"] == 0, summary
    data = json.loads((vit_store / "manifests" / "grey.json").read_text())
    card = json.loads((vit_store / "model_factories-grey" / "model.json").read_text())
    assert card["input_channels"] == 1 and card["shown_as"] == "grayscale" and len(card["classes"]) == 10
    logit = next(u for u in data["units"] if u["unit"] == "logits:4")
    meta = json.loads((vit_store / logit["path"] / "meta.json").read_text())
    assert meta["channels"] == 1 and meta["shown_as"] == "grayscale"
    assert "self_top1" in meta["scores"] and not any(k.startswith("lite1") for k in meta["scores"])
    pixels = np.asarray(Image.open(vit_store / logit["path"] / "image.png").convert("RGB"), dtype=np.int16)
    assert (pixels[..., 0] == pixels[..., 2]).all()


def test_vit_job_lands_in_the_store(vit_store: Path) -> None:
    data = json.loads((vit_store / "manifests" / "vit.json").read_text())
    specs = {u["unit"] for u in data["units"]}
    assert {"encoder.layers.encoder_layer_1:2@cls", "encoder.layers.encoder_layer_0.mlp.1:3",
            "encoder.layers.encoder_layer_0:1@1/1", "logits:2"} <= specs
    card = json.loads((vit_store / "model_factories-vit" / "model.json").read_text())
    assert card["classes"] == [f"class {i}" for i in range(10)] and card["fixed_size"] is True
    layouts = {layer["name"]: layer["layout"] for layer in card["layers"]}
    assert layouts["encoder.layers.encoder_layer_1"] == "tokens+cls" and layouts["conv_proj"] == "nchw"
    token = next(u for u in data["units"] if u["unit"].endswith("@cls"))
    meta = json.loads((vit_store / token["path"] / "meta.json").read_text())
    history = meta["activation"]["history"]
    assert meta["kind"] == "token" and meta["shown_as"] == "rgb" and len(history) == 6


@pytest.fixture(scope="module")
def vit_site(vit_store: Path, tmp_path_factory):
    """The gallery of the ViT store, served on loopback (set up before, and closed after, each page)."""
    report = build_site(vit_store, tmp_path_factory.mktemp("vit-site") / "site")
    with serve_in_thread(report.site_dir) as url:
        yield read_store(vit_store), url


def test_vit_pages_in_the_browser(vit_site, page) -> None:
    atlas, url = vit_site
    [model] = [m for m in atlas.models if m.name.endswith("vit")]
    names = {layer.name for layer in model.layers}
    assert {"encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_1.mlp.1", "logits"} <= names
    page.goto(url + page_url(layer_page(model.name, "encoder.layers.encoder_layer_1")))
    p = page.page
    assert p.locator("a.fv-cell").count() == 3
    p.locator("a.fv-cell").first.click()
    p.wait_for_selector("dialog.fv-lightbox[open]", timeout=5000)
    p.wait_for_function("() => { const i = document.querySelector('.fv-lb-img');"
                        " return i && i.complete && i.naturalWidth > 0; }", timeout=10000)
    p.keyboard.press("Escape")
    page.goto(url + page_url(layer_page(model.name, "logits")))
    assert p.locator("a.fv-cell").count() == 3
    assert "class 2" in p.content()
    p.wait_for_load_state("networkidle")
    grey = [m for m in atlas.models if m.name.endswith("grey")]
    if grey:  # the grayscale job ran first: its model page says how its images are shown
        page.goto(url + page_url(model_page(grey[0].name)))
        assert "1, shown as grayscale" in p.content()
        p.wait_for_load_state("networkidle")
