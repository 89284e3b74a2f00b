"""Find broken local references in a built site: pages, images, videos and per-unit JSON.

MkDocs' strict mode validates Markdown links only; most of the gallery is raw HTML (grids, cards) plus
media linked in after the build, so this checker looks at what the browser will actually request.
"""

from __future__ import annotations

import html
import json
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

#: attributes whose values are URLs the gallery (or Material) loads or links to
_ATTR = re.compile(r'\s(href|src|poster|data-anim|data-meta)="([^"]*)"')
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_JSON_KEYS = ("image", "poster", "mp4", "diversity")


@dataclass(frozen=True)
class Broken:
    """A reference from ``source`` (site-relative file) to a missing ``url``."""

    source: str
    attr: str
    url: str

    def __str__(self) -> str:
        return f"{self.source}: {self.attr}={self.url!r} does not resolve to a file of the site"


def _index(site: Path) -> set[str]:
    files: set[str] = set()
    for dirpath, _dirs, names in os.walk(site):
        rel_dir = os.path.relpath(dirpath, site)
        for name in names:
            files.add(posixpath.normpath(posixpath.join(rel_dir.replace(os.sep, "/"), name)))
    return files


def _resolve(url: str, base_dir: str, root_prefix: str) -> str | None:
    """Site-relative file path a local URL points at; None for external/fragment-only URLs."""
    url = html.unescape(url).strip()
    if not url or url.startswith(("#", "?", "//")) or _SCHEME.match(url):
        return None
    path = unquote(urlsplit(url).path)
    if not path:
        return None
    if path.startswith("/"):
        path = path[len(root_prefix):] if path.startswith(root_prefix) else path.lstrip("/")
        joined = path
    else:
        joined = posixpath.join(base_dir, path)
    target = posixpath.normpath(joined) if joined else "."
    if path.endswith("/") or target == ".":
        target = posixpath.normpath(posixpath.join(target, "index.html"))
    return target


def check_site(site_dir: Path | str, site_url: str | None = None) -> list[Broken]:
    """All broken local references of every HTML page and every unit.json under ``site_dir``."""
    site = Path(site_dir)
    files = _index(site)
    root_prefix = urlsplit(site_url).path if site_url else "/"
    if not root_prefix.endswith("/"):
        root_prefix += "/"
    broken: list[Broken] = []

    def missing(target: str | None) -> bool:
        if target is None:
            return False
        if target.startswith("../") or target == "..":
            return True
        return target not in files and f"{target}/index.html" not in files

    for rel in sorted(files):
        if rel.endswith(".html"):
            base = posixpath.dirname(rel)
            text = (site / rel).read_text(encoding="utf-8", errors="replace")
            for attr, url in _ATTR.findall(text):
                if missing(_resolve(url, base, root_prefix)):
                    broken.append(Broken(rel, attr, url))
        elif rel.endswith("/unit.json"):
            base = posixpath.dirname(rel)
            data = json.loads((site / rel).read_text(encoding="utf-8"))
            for key in _JSON_KEYS:
                values = data.get(key)
                for url in values if isinstance(values, list) else [values]:
                    if isinstance(url, str) and missing(_resolve(url, base, root_prefix)):
                        broken.append(Broken(rel, key, url))
            for key, url in _nested_urls(data):  # real examples and circuit links (examples_pages.py)
                if missing(_resolve(url, base, root_prefix)):
                    broken.append(Broken(rel, key, url))
    return broken


def _nested_urls(data: dict) -> list[tuple[str, str]]:
    """(key, url) of every src/href inside a unit record's "examples" and "circuits"."""
    found: list[tuple[str, str]] = []

    def walk(value: object, where: str) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key in ("src", "href") and isinstance(inner, str):
                    found.append((f"{where}.{key}", inner))
                else:
                    walk(inner, where)
        elif isinstance(value, list):
            for inner in value:
                walk(inner, where)

    for key in ("examples", "circuits"):
        walk(data.get(key), key)
    return found
