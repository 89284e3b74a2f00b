"""Real images beside synthetic ones, in a real browser: a store rendered by the pipeline with dataset
examples, explain pages, circuit links and a zoom dive (the tiny job: 48 px, 8 steps, two crops per
image), built and served, checked in headless Chromium. Screenshots go to test-artifacts/site-extras-*.png.

FEATVIS_EXTRAS_STORE=/path/to/store (e.g. the demo's ./store) runs the same checks on that store.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import pytest

from featvis_site.build import build_site
from featvis_site.serve import serve_in_thread

pytestmark = pytest.mark.slow
from browsing import ARTIFACTS, FORCE_LOAD_ALL, Watched  # noqa: E402

VIEWPORT = {"width": 1360, "height": 1000}

EXTRAS = """
    examples: {folder: skimage, crops: 2, shard: 4, top: 4, negatives: 2, explain_images: 4, circuit_examples: 1}
    zoom: {logits: [hen], size: 48, steps: 24, warmup: 4, every: 2, crossfade: 2}
"""


@pytest.fixture(scope="module")
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("extras")
    store = os.environ.get("FEATVIS_EXTRAS_STORE")
    if not store:
        request.getfixturevalue("prefect_server")
        from conftest import TINY_JOB

        from featvis_pipeline.flows import atlas

        flows = root / "flows.yaml"
        flows.write_text(TINY_JOB.format(store=root / "store", batch=8, extra="") + EXTRAS)
        summary = atlas(job="tiny", flows=str(flows))
        assert summary["rendered"] == 7 and summary["extras"]["examples"]["shards_computed"] >= 2
        store = root / "store"
    report = build_site(store, root / "site")
    with serve_in_thread(report.site_dir) as url:
        yield url


def _shot(page: Any, name: str, **kw: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"site-extras-{name}.png"), **kw)


def test_lightbox_shows_examples_and_circuit_links_that_open_their_units(site: str, page: Watched) -> None:
    p = page.page
    page.goto(site + "models/efficientnet_lite0/blocks.10/")
    p.locator("a.fv-cell").first.click()
    p.wait_for_selector("dialog.fv-lightbox[open] .fv-lb-extras", timeout=10000)
    strips = p.locator(".fv-lb-extras .fv-lb-strip")
    assert strips.count() >= 3  # strongest, most negative, driven by (blocks.4)
    examples = p.locator(".fv-lb-top .fv-lb-thumb img")
    assert examples.count() >= 2
    p.wait_for_function("() => Array.from(document.querySelectorAll('.fv-lb-extras img'))"
                        ".every(i => i.complete && i.naturalWidth > 0)", timeout=10000)
    _shot(p, "lightbox")
    upstream = p.locator(".fv-lb-circuit a.fv-lb-thumb").first
    title = upstream.get_attribute("title")
    upstream.click()  # a circuit link opens the other unit's lightbox on its own layer page
    p.wait_for_url("**/blocks.4/#k=*", timeout=10000)
    p.wait_for_selector("dialog.fv-lightbox[open]", timeout=10000)
    assert p.locator("#fv-lb-title").inner_text() in title
    assert p.locator(".fv-lb-extras").count() == 1  # blocks.4 units have examples and downstream links


def test_explain_page_links_channels_and_examples_link_back(site: str, page: Watched) -> None:
    p = page.page
    page.goto(site + "models/efficientnet_lite0/explain/")
    sections = p.locator("section.fv-explained")
    assert sections.count() >= 1
    first = sections.first
    assert first.locator(".fv-top5 tbody tr").count() == 5
    images = p.evaluate(FORCE_LOAD_ALL)
    assert images["broken"] == [] and images["count"] >= 5
    _shot(p, "explain", full_page=True)
    maps = first.locator("a.fv-map")
    assert maps.count() >= 1  # the demo's explain layer channels are rendered: each map links to its unit
    maps.first.click()
    p.wait_for_selector("dialog.fv-lightbox[open] .fv-lb-extras", timeout=10000)
    # and back: the explained images are those most units show, so some unit's examples link to one
    back = "dialog.fv-lightbox .fv-lb-top a.fv-lb-thumb[href*='/explain/#img-']"
    for _ in range(8):
        if p.locator(back).count():
            break
        title = p.locator("#fv-lb-title").inner_text()
        p.keyboard.press("ArrowRight")
        p.wait_for_function(f"document.querySelector('#fv-lb-title').textContent !== {title!r}", timeout=5000)
        p.wait_for_selector("dialog.fv-lightbox[open] .fv-lb-extras", timeout=10000)
    link = p.locator(back).first
    target = link.get_attribute("href").rsplit("#", 1)[1]
    link.click()
    p.wait_for_url("**/explain/#img-*", timeout=10000)
    assert p.locator(f"section#{target}").count() == 1


def test_logit_page_offers_the_endless_dive(site: str, page: Watched) -> None:
    p = page.page
    page.goto(site + "models/efficientnet_lite0/logits/")
    dives = p.locator("details.fv-dives")
    assert dives.count() == 1 and not dives.get_attribute("open")  # optional: closed until asked for
    p.locator("details.fv-dives summary").click()
    video = p.locator("details.fv-dives video").first
    video.evaluate("v => v.play()")
    p.wait_for_function("() => { const v = document.querySelector('details.fv-dives video');"
                        " return v.readyState >= 2 && v.currentTime > 0 && v.loop; }", timeout=10000)
    _shot(p, "dives", full_page=True)
