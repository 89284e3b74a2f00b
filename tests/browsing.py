"""What the browser tests share: Debian's Chromium driven by Playwright, and a page that records every
console error, page error and failed request (conftest.py gives the `browser` and `page` fixtures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]

FORCE_LOAD_ALL = """async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = "eager"; });
  for (let y = 0; y < document.body.scrollHeight; y += window.innerHeight) { window.scrollTo(0, y); }
  await Promise.all(imgs.map(i => (i.complete && i.naturalWidth) ? null :
    new Promise(r => { i.addEventListener("load", r); i.addEventListener("error", r); setTimeout(r, 8000); })));
  window.scrollTo(0, 0);
  return {count: imgs.length, broken: imgs.filter(i => !(i.naturalWidth > 0)).map(i => i.currentSrc || i.src)};
}"""


class Watched:
    """A page plus every console error, page error and failed request it produced."""

    def __init__(self, page: Any) -> None:
        self.page, self.problems = page, []
        page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("response", lambda r: self.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
        page.on("requestfailed", self._failed)

    def _failed(self, request: Any) -> None:
        # cancelled, not broken: leaving a page aborts its in-flight requests (e.g. the favicon), and switching
        # or closing a video aborts its download. A missing file shows up as an HTTP 404 response instead.
        if "ERR_ABORTED" in (request.failure or ""):
            return
        self.problems.append(f"request failed: {request.url} ({request.failure})")

    def goto(self, url: str) -> None:
        self.page.goto(url, wait_until="load")
