"""What a grid cell and a thumbnail strip show, as plain data for the page templates (templates/_macros.html).

Cells work without JavaScript: a rendered cell is a link to its full image; the assets/featvis.js script adds
the hover preview (the unit's MP4, named by the cell's data-anim), the lightbox and filtering on top. No HTML
is made here: the templates escape every value.
"""

from __future__ import annotations

from typing import Any, Sequence

from featvis_site import layout
from featvis_site.atlas import Unit
from featvis_site.media import MediaPlan

WHY = {
    "pending": "not rendered yet",
    "failed": "render failed",
    "corrupt": "files fail their checksum; will be re-rendered",
}


def search_name(unit: Unit) -> str:
    """What the filter box matches against (lower-case words)."""
    return f"{unit.index if unit.index is not None else ''} {unit.label} {unit.unit}".lower()


def cell(page: str, unit: Unit, plan: MediaPlan, *, filterable: bool = False, label: str | None = None) -> dict[str, Any]:
    """One grid cell: a thumbnail link for a published unit, a placeholder otherwise. `label` replaces the
    default caption (the comparison page captions cells with the model name)."""
    assets = plan.assets(unit) if unit.published else None
    why = WHY.get(unit.state, unit.state)
    if unit.state == "failed" and unit.reason:
        why = f"{why}: {unit.reason}"
    view: dict[str, Any] = {
        "kind": unit.kind, "index": unit.index, "label": unit.label, "unit": unit.unit, "state": unit.state,
        "slug": unit.folder.split("@", 1)[0], "key12": unit.key12, "search": search_name(unit),
        "filterable": filterable, "caption": label, "short": unit.caption, "why": why, "image": None,
    }
    if assets is not None:
        view.update(image=layout.rel(page, assets.image), meta=layout.rel(page, assets.meta),
                    thumb=layout.rel(page, assets.thumb), anim=layout.rel(page, assets.mp4) if assets.mp4 else None)
    return view


def sample(units: Sequence[Unit], n: int) -> list[Unit]:
    """Up to n published units spread evenly over the list (a strip shows the range, not the first n)."""
    done = [u for u in units if u.published]
    if len(done) <= n:
        return done
    return [done[round(i * (len(done) - 1) / (n - 1))] for i in range(n)] if n > 1 else done[:1]


def strip(page: str, units: Sequence[Unit], plan: MediaPlan, n: int = 8) -> list[dict[str, str]]:
    """A row of small sample thumbnails: their URLs and labels."""
    thumbs = []
    for unit in sample(units, n):
        assets = plan.assets(unit)
        if assets:
            thumbs.append({"src": layout.rel(page, assets.thumb), "label": unit.label})
    return thumbs
