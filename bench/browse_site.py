"""Drive a built gallery in Chromium the way a visitor does, and time what they wait for.

    python -m bench.browse_site out/site --model efficientnet_lite0 --layer blocks.15 [--shots DIR]

For the layer page and the class-logit page, from a local server (the site's own `serve`), with the cache
empty: the time from navigation to the first screen of thumbnails (every grid image in the viewport decoded),
the bytes fetched before the visitor scrolls, and the thumbnails the page holds. Then, on the logits page:
filtering (time from typing to the grid showing only the matches); and on the layer page: the lightbox
stepped with the arrow key through every unit of the layer (each step must show the next unit).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from browsing import ARGS, CHROMIUM  # noqa: E402

from featvis_site.layout import layer_page, page_url  # noqa: E402
from featvis_site.serve import make_server  # noqa: E402

FIRST_SCREEN = """() => {
  const inView = Array.from(document.querySelectorAll('a.fv-cell img')).filter(i => {
    const r = i.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight && r.width > 0; });
  return inView.length > 0 && inView.every(i => i.complete && i.naturalWidth > 0) ? inView.length : 0;
}"""
BYTES = """() => performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation'))
  .reduce((s, e) => s + (e.transferSize || e.encodedBodySize || 0), 0)"""
VISIBLE = "Array.from(document.querySelectorAll('.fv-browser a.fv-cell')).filter(c => !c.closest('[hidden]') && !c.hidden).length"


def first_screen(page, url: str) -> dict:
    """Load `url` with an empty cache; time until the thumbnails in the first screen are all decoded."""
    began = time.perf_counter()
    page.goto(url, wait_until="commit")
    shown = page.wait_for_function(FIRST_SCREEN, timeout=60_000, polling=10).json_value()
    seconds = time.perf_counter() - began
    return {"url": url, "first_thumbnails_s": round(seconds, 3), "thumbnails_in_first_screen": shown,
            "cells_on_page": page.evaluate("document.querySelectorAll('a.fv-cell').length"),
            "bytes_before_scrolling": page.evaluate(BYTES),
            "dom_content_loaded_ms": round(page.evaluate(
                "performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"))}


def filter_timing(page, word: str) -> dict:
    total = page.evaluate(VISIBLE)
    began = time.perf_counter()
    page.fill(".fv-filter", word)
    page.wait_for_function(f"{VISIBLE} < {total}", timeout=10_000, polling="raf")
    seconds = time.perf_counter() - began
    shown = page.evaluate(VISIBLE)
    page.fill(".fv-filter", "")
    page.wait_for_function(f"{VISIBLE} === {total}", timeout=10_000, polling="raf")
    return {"filter": word, "filter_s": round(seconds, 3), "matches": shown, "of": total}


def step_through(page) -> dict:
    """Open the first unit's lightbox and press → until it wraps round: every unit must be shown once."""
    cells = page.evaluate("document.querySelectorAll('.fv-browser a.fv-cell, a.fv-cell').length")
    page.locator("a.fv-cell").first.click()
    page.wait_for_selector("dialog.fv-lightbox[open]", timeout=10_000)
    title = page.locator("#fv-lb-title")
    seen, began = [title.inner_text()], time.perf_counter()
    for _ in range(cells - 1):
        previous = seen[-1]
        page.keyboard.press("ArrowRight")
        page.wait_for_function("t => document.querySelector('#fv-lb-title').textContent !== t", arg=previous,
                               timeout=10_000, polling="raf")
        seen.append(title.inner_text())
    seconds = time.perf_counter() - began
    page.keyboard.press("ArrowRight")  # wraps to the first
    page.wait_for_function("t => document.querySelector('#fv-lb-title').textContent === t", arg=seen[0], timeout=10_000)
    page.keyboard.press("Escape")
    return {"lightbox_units": len(seen), "distinct": len(set(seen)), "cells": cells,
            "step_ms": round(1000 * seconds / max(1, len(seen) - 1), 1), "wraps": True}


def main() -> int:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--layer", default="blocks.15")
    parser.add_argument("--word", default="dog")
    parser.add_argument("--shots", type=Path, help="save screenshots of both pages here")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    server = make_server(args.site, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    figures = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for name, layer in (("layer", args.layer), ("logits", "logits")):
            context = browser.new_context(viewport={"width": 1360, "height": 900})  # a fresh, empty cache
            page = context.new_page()
            figures[name] = first_screen(page, base + page_url(layer_page(args.model, layer)))
            if args.shots:
                args.shots.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.shots / f"{args.model}-{name}.png"))
            figures[name].update(filter_timing(page, args.word) if name == "logits" else step_through(page))
            print(json.dumps({name: figures[name]}), flush=True)
            context.close()
        browser.close()
    server.shutdown()
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
