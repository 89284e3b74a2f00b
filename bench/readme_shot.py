"""The picture at the top of README.md: a layer page of a built gallery beside its lightbox, in Chromium.

    python -m bench.readme_shot out/site --model efficientnet_lite0 --layer blocks.10 [--out bench/results/readme/gallery.jpg]

Run it on the demo's site after `make demo` to regenerate the README's picture.
"""

from __future__ import annotations

import argparse
import sys
import threading
from io import BytesIO
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from browsing import ARGS, CHROMIUM  # noqa: E402

from featvis_site.layout import layer_page, page_url  # noqa: E402
from featvis_site.serve import make_server  # noqa: E402

VIEWPORT = {"width": 1200, "height": 800}
THUMBS_DECODED = """() => { const i = Array.from(document.querySelectorAll('a.fv-cell img')).slice(0, 8);
  return i.length > 0 && i.every(x => x.complete && x.naturalWidth > 0); }"""


def shots(site: Path, model: str, layer: str) -> tuple[Image.Image, Image.Image]:
    """(layer page, the same page with the first unit's lightbox open), as the visitor sees them."""
    from playwright.sync_api import sync_playwright

    server = make_server(site, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/{page_url(layer_page(model, layer))}")
            page.wait_for_function(THUMBS_DECODED, timeout=60_000)
            grid = Image.open(BytesIO(page.screenshot()))
            page.locator("a.fv-cell").first.click()
            page.wait_for_selector("dialog.fv-lightbox[open] img", timeout=10_000)
            page.wait_for_timeout(800)  # the video's first frames and the chart
            lightbox = Image.open(BytesIO(page.screenshot()))
            browser.close()
    finally:
        server.shutdown()
    return grid, lightbox


def side_by_side(left: Image.Image, right: Image.Image, width: int = 1600) -> Image.Image:
    gap = 16
    sheet = Image.new("RGB", (left.width + gap + right.width, max(left.height, right.height)), "white")
    sheet.paste(left.convert("RGB"), (0, 0))
    sheet.paste(right.convert("RGB"), (left.width + gap, 0))
    return sheet.resize((width, round(sheet.height * width / sheet.width)), Image.LANCZOS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--layer", default="blocks.10")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "readme" / "gallery.jpg")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    side_by_side(*shots(args.site, args.model, args.layer)).save(args.out, quality=85)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
