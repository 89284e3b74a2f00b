"""Stored XSS through Markdown (issue 19, item 2.1): a store string that is HTML-escaped but then read by
Markdown became a `javascript:` link or an `onmouseover` attribute. Every page kind (home, model, layer,
logits, compare, explain, dives) is built from a store whose every string carries Markdown payloads (links and
images to javascript:, attr_list braces, autolinks, bare links, raw HTML, md_in_html, blocks after newlines).
In the built HTML no payload may become an element, a link or an attribute, and each must be shown as the
very text it is; in Chromium nothing may fire on hover or click.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import markdown
import pytest
import yaml

from featvis_site.build import BuildReport, build_site
from featvis_site.serve import serve_in_thread
from featvis_site.text import inert
from hostile import INJECTED, MD_PAYLOADS, markdown_store, md_payload
from test_site_hostile import injected

SITE_CONFIG = Path(__file__).resolve().parents[1] / "site" / "mkdocs.yml"


def site_markdown() -> markdown.Markdown:
    """Python-Markdown with exactly the extensions (and their settings) site/mkdocs.yml enables."""
    names, configs = [], {}
    for entry in yaml.safe_load(SITE_CONFIG.read_text())["markdown_extensions"]:
        name, config = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
        names.append(name)
        configs[name] = config or {}
    return markdown.Markdown(extensions=names, extension_configs=configs)


class Shown(HTMLParser):
    """The text and attribute values a browser would show, and every element with its attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.values: list[str] = []
        self.tags: list[tuple[str, tuple[str, ...]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, tuple(sorted(name for name, _ in attrs))))
        self.values += [value or "" for _, value in attrs]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def shown(html: str) -> Shown:
    parser = Shown()
    parser.feed(html)
    parser.close()
    return parser


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# every Markdown context a template puts a value in: a heading, a paragraph, an admonition, a table cell,
# and HTML blocks (with md_in_html on, as in site/mkdocs.yml)
CONTEXTS = [
    "# Title {v} <small>{v}</small>\n",
    "Some text {v} and more.\n",
    "{v}\n\n{v} at the start of a line\n",
    '!!! warning "Left out"\n\n    Leaves out: {v}.\n',
    "| a | b |\n|---|---|\n| {v} | x |\n",
    '<div class="x"><p>{v}</p></div>\n',
    '<div class="x" markdown="1">\n{v}\n</div>\n',
    '<details class="abstract"><summary>Job <code>{v}</code></summary><p>{v}</p></details>\n',
]


_MARKDOWN: list[markdown.Markdown] = []


def rendered(context: str, value: str) -> str:
    """`context` with `value` printed as a template prints it, through the site's Markdown."""
    if not _MARKDOWN:
        _MARKDOWN.append(site_markdown())
    return _MARKDOWN[0].reset().convert(context.format(v=inert(value)))


@pytest.mark.parametrize("context", CONTEXTS, ids=["heading", "paragraph", "line-start", "admonition", "table", "html", "md_in_html",
                                                   "details"])
def test_a_value_is_its_own_text_in_every_markdown_context(context: str) -> None:
    benign = shown(rendered(context, "plain"))
    for value in MD_PAYLOADS:
        html = rendered(context, value)
        got = shown(html)
        assert got.tags == benign.tags, (value, html)  # not one element or attribute more or less
        assert squash(value) in squash(" ".join(got.text)), (value, html)
        assert injected(html) == []


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuildReport:
    root = tmp_path_factory.mktemp("markdown-xss")
    return build_site(markdown_store(root / "store"), root / "site")


def _pages(site: Path) -> dict[str, Path]:
    """One built page of each kind."""
    models = sorted(p for p in (site / "models").iterdir() if p.name.startswith("m_clickme"))
    first = models[0]
    return {"home": site / "index.html", "model": first / "index.html", "layer": first / "block1/index.html",
            "logits": first / "logits/index.html", "compare": site / "compare/index.html",
            "explain": first / "explain/index.html", "dives": first / "logits/index.html"}


# what each page kind must show, verbatim (payload indices as hostile.markdown_store places them)
SHOWN = {"home": [0, 1, 2], "model": [0, 2, 12, 13, 14], "layer": [0], "logits": [0], "compare": [0, 1],
         "explain": [0, 15, 16, 17, 23], "dives": [21]}


def test_no_payload_is_markup_on_any_page_kind(built: BuildReport) -> None:
    site = built.site_dir
    for kind, path in _pages(site).items():
        html = path.read_text(encoding="utf-8")
        assert injected(html) == [], (kind, injected(html)[:3])
        got = shown(html)
        text = squash(" ".join(got.text + got.values))
        for i in SHOWN[kind]:
            assert squash(md_payload(i)) in text, (kind, md_payload(i))
    for page in site.rglob("*.html"):  # and every other page
        html = page.read_text(encoding="utf-8")
        assert injected(html) == [], (page, injected(html)[:3])
        assert not re.search(r"""(?:href|src)\s*=\s*["']?\s*javascript:""", html, re.I), page


HOVER_CLICK = """async () => {
  const hits = Array.from(document.querySelectorAll('article *, .md-nav *, .md-header *'))
    .filter(e => /alert\\(|javascript|onmouseover/i.test((e.textContent || '') + (e.getAttribute('title') || '')))
    .filter(e => e.children.length === 0 || e.matches('a, summary, em, strong, small, code, h1, h2'))
    .slice(0, 80);
  for (const e of hits) {
    for (const type of ['mouseover', 'mouseenter', 'mousemove', 'focus', 'mousedown', 'mouseup']) {
      e.dispatchEvent(new MouseEvent(type, {bubbles: true}));
    }
    if (!e.closest('a[href]')) e.click();  // links are checked below: none may point to javascript:
  }
  const own = Array.from(document.querySelectorAll('*')).flatMap(e => Array.from(e.attributes)
    .filter(a => /^on/i.test(a.name)).map(a => e.tagName + ' ' + a.name));
  const scripted = Array.from(document.querySelectorAll('[href], [src], [action], [formaction], [data]'))
    .filter(e => ['href', 'src', 'action', 'formaction', 'data'].some(n => /^\\s*javascript:/i.test(e.getAttribute(n) || '')));
  return {hits: hits.length, handlers: own, scripted: scripted.length};
}"""


@pytest.mark.slow
def test_nothing_fires_in_chromium_on_any_page_kind(built: BuildReport, browser: Any) -> None:
    site = built.site_dir
    dialogs: list[str] = []
    hovered = 0
    with serve_in_thread(site) as base:
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        page = context.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        for kind, path in _pages(site).items():
            url = base + path.parent.relative_to(site).as_posix().removeprefix(".") + "/"
            page.goto(url.replace("//", "/").replace(":/", "://"), wait_until="load")
            result = page.evaluate(HOVER_CLICK)
            for locator in page.locator("article a, article summary, article small, article code").all()[:15]:
                if locator.is_visible():
                    locator.hover(timeout=2000)
                    hovered += 1
            state = page.evaluate(INJECTED)
            assert result["handlers"] == [] and result["scripted"] == 0, (kind, result)
            assert state == {"pwned": 0, "elements": 0, "javascript": 0}, (kind, state)
            assert result["hits"] >= 1, kind  # the payloads are on the page, as text
        context.close()
    assert dialogs == [], dialogs
    assert hovered >= 20  # real pointer hovers too (Playwright moves the mouse), beyond the dispatched events
