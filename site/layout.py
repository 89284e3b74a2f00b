"""Where things live: docs-dir page paths, published media paths and the relative URLs between them.

One module owns these rules so pages, media plan and link checker cannot disagree. The site is built with
``use_directory_urls`` (``models/m/layer.md`` is served at ``models/m/layer/``), and every URL we write is
relative, so the site works at a domain root and under a GitHub project path alike.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from pathlib import Path
from urllib.parse import quote

MEDIA = "media"
MODELS = "models"
ASSETS = "assets/featvis"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_RESERVED = {"index", "logits-page"}


def safe_name(name: str) -> str:
    """A file-name-safe, URL-safe version of a model or layer name (``blocks.10`` stays ``blocks.10``).

    Names that had to change get a short hash after a ``~`` (a character no unchanged name has), so two
    names never share a page, whatever a store calls its models and layers."""
    cleaned = _UNSAFE.sub("_", name).strip(".-_")[:80] or "_"
    if cleaned == name and cleaned not in _RESERVED:
        return cleaned
    return f"{cleaned}~{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def inside(base: Path, relative: str) -> Path:
    """`base/relative` for a path this generator made; ValueError when it would leave `base` (``..``,
    absolute, empty parts), whatever a store's names were."""
    parts = relative.split("/")
    if not relative or relative.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"{relative!r} is not a path inside {base}")
    return base.joinpath(*parts)


def model_page(model: str) -> str:
    return f"{MODELS}/{safe_name(model)}/index.md"


def layer_page(model: str, layer: str) -> str:
    return f"{MODELS}/{safe_name(model)}/{safe_name(layer)}.md"


def media_path(store_rel: str) -> str:
    """Published path of a store file: the store layout, under ``media/`` (key-named, so cache-safe)."""
    return f"{MEDIA}/{store_rel}"


def page_dir(md_path: str) -> str:
    """The URL directory a page is served from (``a/b.md`` -> ``a/b/``, ``a/index.md`` -> ``a/``)."""
    stem = md_path[: -len(".md")]
    if stem == "index":
        return ""
    if stem.endswith("/index"):
        return stem[: -len("index")]
    return stem + "/"


def page_url(md_path: str) -> str:
    """Site-relative URL of a page (a directory URL)."""
    return page_dir(md_path)


class Url(str):
    """A relative URL this generator made (`rel`): percent-encoded, so made of characters that are inert in
    HTML and in Markdown alike; page templates print it as it is (`__html__`), where any other text has its
    Markdown punctuation encoded (text.inert). Anything else in it is escaped after all."""

    _SAFE = re.compile(r"[A-Za-z0-9/@._~%#=-]*")

    def __html__(self) -> str:
        if self._SAFE.fullmatch(self):
            return str(self)
        from featvis_site.text import inert

        return str(inert(str(self)))


def rel(from_md: str, target: str, fragment: str = "") -> Url:
    """Relative, percent-encoded URL from a page to a site path (a file, or a directory ending in '/'), with
    an optional `#fragment` (percent-encoded too)."""
    start = page_dir(from_md).rstrip("/") or "."
    is_dir = target.endswith("/") or target == ""
    path = posixpath.relpath(target.rstrip("/") or ".", start)
    if is_dir:
        path = "./" if path == "." else path + "/"
    return Url(quote(path, safe="/@-._~") + (f"#{quote(fragment, safe='=@-._~')}" if fragment else ""))
