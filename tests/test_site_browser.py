"""The built gallery in a real browser (headless Debian Chromium via Playwright), served on loopback.

Checks what a visitor sees: every image and hover video (the unit's MP4) loads, hovering a cell plays it over
the thumbnail, the class filter narrows the grid, the lightbox opens with its video playing, and no page logs a console error or a failed request. Screenshots
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

# every cell's hover video is served and is an MP4 (an ISO BMFF file: 'ftyp' box first)
LOAD_ALL_ANIMS = """async () => {
  const cells = Array.from(document.querySelectorAll("a.fv-cell[data-anim]"));
  const ok = await Promise.all(cells.map(c => fetch(new URL(c.getAttribute("data-anim"), location.href).href)
    .then(r => r.ok ? r.arrayBuffer() : new ArrayBuffer(0))
    .then(b => b.byteLength > 8 && new TextDecoder().decode(new Uint8Array(b, 4, 4)) === "ftyp", () => false)));
  return {count: cells.length, broken: cells.filter((c, i) => !ok[i]).map(c => c.getAttribute("data-anim"))};
}"""

HOVER_VIDEO = """cell => {
  const v = cell.querySelector("video"), img = cell.querySelector("img");
  if (!v || v.paused || v.readyState < 2) return null;
  const a = v.getBoundingClientRect(), b = img.getBoundingClientRect(), url = u => new URL(u, location.href).href;
  return {src: v.currentSrc === url(cell.getAttribute("data-anim")), mp4: v.currentSrc.endsWith("/anim.mp4"),
          poster: v.poster === url(img.getAttribute("src")), muted: v.muted, loop: v.loop, inline: v.playsInline,
          box: [a.x - b.x, a.y - b.y, a.width - b.width, a.height - b.height].map(d => Math.abs(d) < 0.5)};
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
        assert anims["broken"] == [], f"{path}: broken hover videos {anims['broken'][:5]}"
        seen += images["count"] + anims["count"]
    published = sum(u.published for u in atlas.units)
    assert seen >= 2 * published  # every published unit's thumbnail and hover video at least once


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
    img = first.locator("img")
    thumb = img.get_attribute("src")
    first.hover()
    playing = p.wait_for_function(HOVER_VIDEO, arg=first.element_handle(), timeout=10000).json_value()
    box = playing.pop("box")
    assert all(playing.values()), playing  # the cell's MP4, muted, looping, inline, the thumbnail as poster
    assert all(box), f"the video does not cover the thumbnail's box exactly: {box}"
    assert first.locator("video").count() == 1 and img.get_attribute("src") == thumb
    _shot(p, "layer")
    p.mouse.move(0, 0)
    p.wait_for_function("cell => !cell.querySelector('video')", arg=first.element_handle(), timeout=5000)
    assert img.get_attribute("src") == thumb and img.evaluate("el => el.complete && el.naturalWidth > 0")
    # keyboard focus plays it too; a cell without data-anim (no MP4 published) gets no video
    first.focus()
    p.wait_for_function(HOVER_VIDEO, arg=first.element_handle(), timeout=10000)
    p.evaluate("document.activeElement.blur()")
    p.wait_for_function("cell => !cell.querySelector('video')", arg=first.element_handle(), timeout=5000)
    bare = first.element_handle()  # (the locator would move on to the next cell with a data-anim)
    bare.evaluate("cell => cell.removeAttribute('data-anim')")
    bare.hover()
    p.wait_for_timeout(300)
    assert p.locator(".fv-grid video").count() == 0
    p.mouse.move(0, 0)
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
