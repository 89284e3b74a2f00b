"""The built gallery in a real browser (headless Debian Chromium via Playwright), served on loopback.

Checks what a visitor sees: every image and hover animation loads, the class filter narrows the grid, the
lightbox opens with its video playing, and no page logs a console error or a failed request. Screenshots
go to test-artifacts/ at the repository root.

By default the site is built from a synthetic store; set FEATVIS_SITE_STORE=/path/to/store to run the same
checks against a real store (e.g. the demo's).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from featvis_site.atlas import Atlas
from featvis_site.build import BuildReport, build_site
from featvis_site.layout import layer_page, page_url
from featvis_site.serve import serve_in_thread
from featvis_site.store_reader import read_store
from bench.synthetic import SyntheticModel, make_store

pytestmark = pytest.mark.slow
from browsing import ARTIFACTS, FORCE_LOAD_ALL, Watched  # noqa: E402

LOAD_ALL_ANIMS = """async () => {
  const cells = Array.from(document.querySelectorAll("a.fv-cell[data-anim]"));
  const sizes = await Promise.all(cells.map(c => new Promise(r => {
    const im = new Image(); im.onload = () => r(im.naturalWidth); im.onerror = () => r(0);
    im.src = new URL(c.getAttribute("data-anim"), location.href).href;
  })));
  return {count: cells.length, broken: cells.filter((c, i) => !sizes[i]).map(c => c.getAttribute("data-anim"))};
}"""


def rendered_store(root: Path) -> Path:
    """A real store: the tiny job rendered by the pipeline (Prefect flow, featvis_core, media writers)."""
    from conftest import TINY_JOB

    from featvis_pipeline.flows import atlas

    flows = root / "flows.yaml"
    flows.write_text(TINY_JOB.format(store=root / "store", batch=8, extra="").replace("scores: false", "scores: true"))
    assert atlas(job="tiny", flows=str(flows))["rendered"] == 7
    return root / "store"


@pytest.fixture(scope="module", params=["synthetic", "rendered"])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Atlas, BuildReport]:
    root = tmp_path_factory.mktemp("browser")
    SHOTS["prefix"] = request.param
    store_env = os.environ.get("FEATVIS_SITE_STORE")
    if store_env:
        store = Path(store_env)
    elif request.param == "rendered":
        request.getfixturevalue("prefect_server")
        store = rendered_store(root)
    else:
        store = make_store(root / "store", [
            SyntheticModel(render={"block1": 6, "block2": 10}, logits=20, other_kinds=True),
            # a second model, so the comparison page compares
            SyntheticModel(name="othernet", layers={"stage1": 8, "stage2": 12}, render={"stage2": 5},
                           logits=list(range(0, 24, 2)), diversity=1, filters=False, corrupt=0),
        ])
    return read_store(store), build_site(store, root / "site")


@pytest.fixture(scope="module")
def base_url(built: tuple[Atlas, BuildReport]) -> Iterator[str]:
    with serve_in_thread(built[1].site_dir) as url:
        yield url


SHOTS = {"prefix": "synthetic"}  # which store the screenshots show


def _shot(page: Any, name: str, **kw: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"site-{SHOTS['prefix']}-{name}.png"), **kw)


def _grid_pages(atlas: Atlas) -> list[str]:
    return [page_url(layer_page(m.name, layer.name)) for m in atlas.models for layer in m.layers]


def test_every_image_and_animation_loads(built: tuple[Atlas, BuildReport], base_url: str, page: Watched) -> None:
    atlas, _ = built
    pages = ["", *(page_url(f"models/{m.name}/index.md") for m in atlas.models), "compare/", *_grid_pages(atlas)]
    seen = 0
    for path in pages:
        page.goto(base_url + path)
        images = page.page.evaluate(FORCE_LOAD_ALL)
        assert images["broken"] == [], f"{path}: broken images {images['broken'][:5]}"
        anims = page.page.evaluate(LOAD_ALL_ANIMS)
        assert anims["broken"] == [], f"{path}: broken animations {anims['broken'][:5]}"
        seen += images["count"] + anims["count"]
    published = sum(u.published for u in atlas.units)
    assert seen >= 2 * published  # every published unit's thumbnail and animation at least once


def test_layer_grid_shows_every_unit_and_hover_plays(built: tuple[Atlas, BuildReport], base_url: str,
                                                     page: Watched) -> None:
    atlas, _ = built
    model = atlas.models[0]
    layer = model.feature_layers[0]
    page.goto(base_url + page_url(layer_page(model.name, layer.name)))
    p = page.page
    assert p.locator(".fv-grid .fv-cell").count() == len(layer.units)
    assert p.locator(".fv-grid .fv-pending").count() == len(layer.units) - len(layer.published)
    first = p.locator("a.fv-cell[data-anim]").first
    thumb = first.locator("img").get_attribute("src")
    first.hover()
    p.wait_for_function("el => el.getAttribute('src').endsWith('anim.webp') && el.complete && el.naturalWidth > 0",
                        arg=first.locator("img").element_handle(), timeout=5000)
    _shot(p, "layer")
    p.mouse.move(0, 0)
    assert first.locator("img").get_attribute("src") == thumb
    p.emulate_media(color_scheme="dark")
    p.reload()
    _shot(p, "layer-dark")


def test_filter_narrows_the_logit_grid(built: tuple[Atlas, BuildReport], base_url: str, page: Watched) -> None:
    atlas, _ = built
    model = next(m for m in atlas.models if m.logits)
    logits = model.logits
    assert logits is not None
    names = [f"{u.index} {u.label} {u.unit}".lower() for u in logits.units]
    # a word that picks out some classes but not all (e.g. "shark" in the synthetic store)
    words = sorted({w for n in names for w in re.findall(r"[a-z]{4,}", n) if 0 < sum(w in x for x in names) < len(names)},
                   key=lambda w: (sum(w in x for x in names), w))
    word = words[-1] if "shark" not in words else "shark"
    expected = sum(word in n for n in names)
    page.goto(base_url + page_url(layer_page(model.name, logits.name)))
    p = page.page
    visible = "() => Array.from(document.querySelectorAll('.fv-logits > .fv-cell')).filter(c => !c.hidden)"
    total = p.evaluate(f"({visible})().length")
    assert total == min(len(logits.units), 120)
    p.fill(".fv-filter", word)
    p.wait_for_function(f"({visible})().length === {expected}", timeout=5000)
    shown = p.evaluate(f"({visible})().map(c => c.getAttribute('data-name'))")
    assert all(word in s for s in shown) and 0 < len(shown) < total
    assert "q=" in p.evaluate("location.hash")
    _shot(p, "logits-filtered")
    target = logits.units[min(3, len(logits.units) - 1)].index
    p.fill(".fv-filter", f"#{target}")
    p.wait_for_function(f"({visible})().length === 1", timeout=5000)
    p.fill(".fv-filter", "")
    p.wait_for_function(f"({visible})().length === {total}", timeout=5000)
    # arriving from Material's search (?h=word) opens the grid already filtered
    page.goto(base_url + page_url(layer_page(model.name, logits.name)) + f"?h={word}")
    p.wait_for_function(f"({visible})().length === {expected}", timeout=5000)
    assert p.input_value(".fv-filter") == word


def test_lightbox_plays_the_video_and_steps(built: tuple[Atlas, BuildReport], base_url: str, page: Watched) -> None:
    atlas, _ = built
    # the class logits when some are rendered (a partial store may have none yet), else any layer
    layers = sorted(((m, layer) for m in atlas.models for layer in m.layers if layer.published),
                    key=lambda ml: not ml[1].is_logits)
    assert layers, "the store has no rendered unit to open"
    model, layer = layers[0]
    page.goto(base_url + page_url(layer_page(model.name, layer.name)))
    p = page.page
    cell = p.locator("a.fv-cell").first
    title = cell.get_attribute("title")
    cell.click()
    p.wait_for_selector("dialog.fv-lightbox[open]", timeout=5000)
    p.wait_for_function(
        "() => { const v = document.querySelector('.fv-lb-video');"
        " return v && !v.hidden && !v.paused && v.readyState >= 2 && v.currentTime > 0; }", timeout=10000)
    box = p.locator("dialog.fv-lightbox")
    assert box.locator("#fv-lb-title").inner_text() == title
    assert box.locator(".fv-lb-chart svg polyline").count() == 1
    assert box.locator(".fv-lb-scores tr").count() >= 2
    assert p.evaluate("document.querySelector('.fv-lb-img').naturalWidth") > 0
    assert "k=" in p.evaluate("location.hash")
    _shot(p, "lightbox")
    p.keyboard.press("ArrowRight")
    p.wait_for_function(f"document.querySelector('#fv-lb-title').textContent !== {title!r}", timeout=5000)
    p.keyboard.press("Escape")
    p.wait_for_function("!document.querySelector('dialog.fv-lightbox').open", timeout=5000)
    # the dialog's "close" event (which drops #k=) fires in a later task than `open` turns false
    p.wait_for_function("!location.hash.includes('k=')", timeout=5000)
    # a unit's link (#k=<key>) opens its lightbox directly
    key = cell.get_attribute("data-k")
    page.goto(base_url + page_url(layer_page(model.name, layer.name)) + f"#k={key}")
    p.wait_for_selector("dialog.fv-lightbox[open]", timeout=5000)
    assert p.locator("#fv-lb-title").inner_text() == title


def test_home_model_and_compare_pages(built: tuple[Atlas, BuildReport], base_url: str, page: Watched) -> None:
    atlas, _ = built
    p = page.page
    page.goto(base_url)
    assert p.locator(".fv-models li").count() == len(atlas.models)
    assert p.locator("[data-md-component=palette]").count() == 1  # light/dark toggle
    _shot(p, "home", full_page=True)
    page.goto(base_url + page_url(f"models/{atlas.models[0].name}/index.md"))
    assert p.locator(".fv-layers li").count() == len(atlas.models[0].layers)
    _shot(p, "model", full_page=True)
    page.goto(base_url + "compare/")
    assert p.locator(".fv-row").count() > 0
    _shot(p, "compare")
