"""A store crafted to inject HTML and script into the gallery (issue 13, item 3): markup in the model name, unit
labels and specs, class names, layer names of the model card, settings, failure reasons, timings and score
names. The build must print every one of them as text: in the generated HTML no payload appears unescaped,
and in Chromium no dialog fires, no injected element exists and no payload ran, on every page, in the
lightbox, in the filter box and in Material's search.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from featvis_site.build import BuildReport, build_site
from featvis_site.serve import serve_in_thread
from featvis_site.store_reader import read_store
from hostile import HOSTILE_MODEL, INJECTED, PAYLOADS, hostile_store



class Injected(HTMLParser):
    """Elements a payload would have made: class `pwned`, an event-handler attribute, a javascript: link."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if (name == "class" and "pwned" in (value or "").split()) or name.startswith("on") or (
                    name in ("href", "src") and (value or "").strip().lower().startswith("javascript:")):
                self.found.append(f"<{tag} {name}={value!r}>")


def injected(text: str) -> list[str]:
    parser = Injected()
    parser.feed(text)
    return parser.found


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BuildReport]:
    root = tmp_path_factory.mktemp("hostile")
    store = hostile_store(root / "store")
    return store, build_site(store, root / "site")


def test_every_payload_is_text_in_the_generated_html(built: tuple[Path, BuildReport]) -> None:
    store, report = built
    atlas = read_store(store)
    assert HOSTILE_MODEL in {m.name for m in atlas.models}
    assert report.published > 0
    pages = [p for p in report.site_dir.rglob("*.html")]
    assert len(pages) >= 8
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert injected(text) == [], (page, injected(text)[:3])
        assert 'href="javascript:' not in text and "href='javascript:" not in text, page
        assert "\x02" not in text and "\x00" not in text, page
    home = (report.site_dir / "index.html").read_text(encoding="utf-8")
    assert html.escape(HOSTILE_MODEL, quote=False).split("onerror")[0] in home  # shown, as text


@pytest.mark.slow
def test_no_payload_runs_in_a_browser(built: tuple[Path, BuildReport], browser: Any) -> None:
    store, report = built
    site = report.site_dir
    pages = sorted({"" if p.parent == site else p.parent.relative_to(site).as_posix() + "/"
                    for p in site.rglob("index.html") if "media" not in p.parts and "search" not in p.parts})
    dialogs: list[str] = []
    visited = cells_opened = 0
    with serve_in_thread(site) as base:
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        page = context.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        for path in pages:
            page.goto(base + path, wait_until="load")
            visited += 1
            for _ in range(3):  # hover and open a few units: the hover preview and the lightbox render their data
                cells = page.locator("a.fv-cell")
                if cells.count() <= cells_opened % 7:
                    break
                cell = cells.nth(cells_opened % 7)
                cell.hover()
                cell.click()
                page.wait_for_selector("dialog.fv-lightbox[open]", timeout=5000)
                page.wait_for_function("document.querySelector('.fv-lb-scores').innerHTML !== ''", timeout=5000)
                page.keyboard.press("Escape")
                cells_opened += 1
            if page.locator(".fv-filter").count():
                page.locator(".fv-filter").first.fill(PAYLOADS[0])
            state = page.evaluate(INJECTED)
            assert state == {"pwned": 0, "elements": 0, "javascript": 0}, (path, state)
        # Material's search renders results from the index as HTML: query the hostile class names
        page.goto(base, wait_until="load")
        for query in ("img", "script", "pwned", "alert"):
            box = page.locator("input.md-search__input")
            box.click()
            box.fill("")
            page.keyboard.type(query)
            page.wait_for_function("/match/i.test(document.querySelector('.md-search-result__meta')?.textContent || '')",
                                   timeout=10000)
            state = page.evaluate(INJECTED)
            assert state == {"pwned": 0, "elements": 0, "javascript": 0}, (query, state)
        assert "<img" in page.title() or "Atlas" in page.title()
        context.close()
    assert dialogs == [], dialogs
    assert visited >= 8 and cells_opened >= 6
    print(f"\nhostile store: {visited} pages, {cells_opened} lightboxes, 4 searches: 0 dialogs, 0 injected elements")
