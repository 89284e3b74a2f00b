"""HTML fragments of the gallery: unit cells, thumbnail strips, the filter toolbar, stat chips.

Pages embed these as raw HTML blocks (one line per cell, no blank lines, so Python-Markdown passes them
through untouched). Cells work without JavaScript: a rendered cell is a link to its full image; the
assets/featvis.js script adds hover animation, the lightbox and filtering on top.
"""

from __future__ import annotations

from html import escape
from typing import Iterable, Sequence

from featvis_site import layout
from featvis_site.atlas import Unit
from featvis_site.media import MediaPlan

WHY = {
    "pending": "not rendered yet",
    "failed": "render failed",
    "corrupt": "files fail their checksum; will be re-rendered",
}


def a(value: object) -> str:
    """Escape for an attribute value or text node."""
    return escape(str(value), quote=True)


def caption(unit: Unit) -> str:
    """The short label under a cell (the page already says which layer it is)."""
    if unit.kind == "logit":
        return f"<b>{unit.index}</b> {a(unit.label)}"
    if unit.kind == "negative":
        return f"−{unit.index}"
    if unit.kind == "layer":
        return "dream"
    if unit.kind == "neuron":
        return a(unit.folder.split("@", 1)[0])
    return a(unit.index if unit.index is not None else unit.unit)


def search_name(unit: Unit) -> str:
    """What the filter box matches against (lower-case words)."""
    return f"{unit.index if unit.index is not None else ''} {unit.label} {unit.unit}".lower()


def cell(page: str, unit: Unit, plan: MediaPlan, *, filterable: bool = False, label: str | None = None) -> str:
    """One grid cell: a thumbnail link for a published unit, a placeholder otherwise.

    label replaces the default caption (the comparison page captions cells with the model name).
    """
    name = f' data-name="{a(search_name(unit))}" data-i="{a(unit.index)}"' if filterable else ""
    cap = a(label) if label is not None else caption(unit)
    assets = plan.assets(unit) if unit.published else None
    if assets is None:
        why = WHY.get(unit.state, unit.state)
        if unit.state == "failed" and unit.reason:
            why = f"{why}: {unit.reason}"
        return (
            f'<div class="fv-cell fv-pending" data-state="{a(unit.state)}"{name} title="{a(unit.label)}: {a(why)}">'
            f'<span class="fv-ph" aria-hidden="true"></span><span class="fv-cap">{cap}</span></div>'
        )
    anim = f' data-anim="{layout.rel(page, assets.anim)}"' if assets.anim else ""
    return (
        f'<a class="fv-cell" href="{layout.rel(page, assets.image)}" data-meta="{layout.rel(page, assets.meta)}"'
        f'{anim} data-k="{unit.key12}"{name} title="{a(unit.label)}">'
        f'<img src="{layout.rel(page, assets.thumb)}" alt="{a(unit.label)}" loading="lazy" decoding="async"'
        f' width="128" height="128"><span class="fv-cap">{cap}</span></a>'
    )


def grid(page: str, units: Iterable[Unit], plan: MediaPlan, *, css: str = "", filterable: bool = False) -> str:
    cls = f"fv-grid {css}".strip()
    extra = " fv-filterable" if filterable else ""
    body = "\n".join(cell(page, u, plan, filterable=filterable) for u in units)
    return f'<div class="{cls}{extra}">\n{body}\n</div>'


def sample(units: Sequence[Unit], n: int) -> list[Unit]:
    """Up to n published units spread evenly over the list (a strip shows the range, not the first n)."""
    done = [u for u in units if u.published]
    if len(done) <= n:
        return done
    return [done[round(i * (len(done) - 1) / (n - 1))] for i in range(n)] if n > 1 else done[:1]


def strip(page: str, units: Sequence[Unit], plan: MediaPlan, n: int = 8) -> str:
    """A row of small sample thumbnails."""
    imgs = []
    for unit in sample(units, n):
        assets = plan.assets(unit)
        if assets:
            imgs.append(
                f'<img src="{layout.rel(page, assets.thumb)}" alt="{a(unit.label)}" title="{a(unit.label)}"'
                f' loading="lazy" decoding="async" width="64" height="64">'
            )
    if not imgs:
        return '<div class="fv-strip fv-strip-empty">nothing rendered yet</div>'
    return f'<div class="fv-strip">{"".join(imgs)}</div>'


def toolbar(placeholder: str, page_size: int, label: str) -> str:
    """Filter box, match count and pager. Hidden until the script enables it."""
    return (
        f'<div class="fv-toolbar" data-page-size="{page_size}" hidden>'
        f'<input type="search" class="md-input fv-filter" placeholder="{a(placeholder)}" aria-label="{a(label)}"'
        f' autocomplete="off" spellcheck="false">'
        f'<span class="fv-count" aria-live="polite"></span>'
        f'<label class="fv-zoom" title="Thumbnail size">Size <input type="range" min="3" max="12" step="0.5"'
        f' value="7.5" aria-label="Thumbnail size"></label>'
        f'<span class="fv-pager"><button type="button" class="md-button fv-prev" aria-label="Previous page">‹</button>'
        f'<span class="fv-page"></span>'
        f'<button type="button" class="md-button fv-next" aria-label="Next page">›</button></span></div>'
    )


def chips(items: Iterable[tuple[str, str]]) -> str:
    """Small stat chips: (value, label) pairs."""
    body = "".join(f'<span class="fv-chip"><b>{a(v)}</b> {a(k)}</span>' for v, k in items)
    return f'<p class="fv-chips">{body}</p>'


def progress(done: int, total: int) -> str:
    pct = 100 * done / total if total else 0
    return (
        f'<div class="fv-progress" role="progressbar" aria-valuemin="0" aria-valuemax="{total}"'
        f' aria-valuenow="{done}" title="{done} of {total} rendered"><span style="width:{pct:.1f}%"></span></div>'
    )
