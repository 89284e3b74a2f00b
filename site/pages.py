"""Generate the gallery's Markdown pages (and the nav) from an Atlas and its media plan.

Few pages, by design: home, one overview per model, one grid per layer (every channel), one page of class
logits per model, one comparison page. No page per unit (MkDocs embeds the nav in every page, so thousands
of pages would be slow and large); unit details come from per-unit JSON in the lightbox. Layer grids and
the comparison are excluded from the search index (thousands of thumbnails, not text); the class-logit
pages stay in it so a class can be found by name. Grid pages hide the TOC for width.

Every page is a Jinja2 template (templates/) rendered with autoescaping, and every value it prints goes
through `text.inert` (its `finalize`): names, labels, keys and settings come from a store or a user's model,
and the page is read by Markdown before the browser, so a value must be inert for both (text.py says how).
Titles and nav entries, which Material's own templates print unescaped and Markdown never reads, are
HTML-escaped here (`title`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, Iterable

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from featvis_site import layout
from featvis_site.text import finalize, join
from featvis_site.atlas import Atlas, Job, Layer, Model, Unit
from featvis_site.cells import cell, strip
from featvis_site.media import MediaPlan

LOGITS_PAGE_SIZE = 120
COMPARE_PAGE_SIZE = 30
KIND_TITLES = {"channel": "Channels", "neuron": "Neurons", "negative": "Negative channels", "layer": "DeepDream"}
#: settings rows shown per job: a manifest's settings are the store's to choose, the page's size is ours
MAX_SETTINGS = 400
TEMPLATES = Path(__file__).resolve().parent / "templates"


_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10))  # Markdown keeps its placeholders in \x02..\x03


def _n(x: int) -> str:
    return f"{x:,}"


ENV = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                  finalize=finalize, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
ENV.filters.update(n=_n, join=join)


def title(text: str) -> str:
    """A page or nav title: Material prints these without escaping (<title>, header, nav), so escape here."""
    return escape(text.translate(_CONTROL), quote=True)


@dataclass(frozen=True)
class Page:
    path: str  # relative to docs_dir
    text: str


def front_matter(**meta: Any) -> str:
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n"


def _render(template: str, meta: dict[str, Any], **context: Any) -> str:
    return front_matter(**meta) + ENV.get_template(template).render(**context)


def flatten(settings: dict[str, Any], prefix: str = "", limit: int = MAX_SETTINGS) -> list[tuple[str, str]]:
    """Nested settings as dotted keys with JSON-ish values, for a two-column table (at most `limit` rows)."""
    rows: list[tuple[str, str]] = []
    for key, value in settings.items():
        if len(rows) >= limit:
            break
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows += flatten(value, f"{name}.", limit - len(rows))
        elif isinstance(value, str):
            rows.append((name, value))
        else:
            rows.append((name, json.dumps(value)[:200]))
    return rows[:limit]


def job_view(job: Job) -> dict[str, Any]:
    """A job's summary line and settings table: preset plus a few telling settings (steps, size...)."""
    shown = []
    for key in ("steps", "size", "image_size", "param", "lr", "diversity"):
        value = job.settings.get(key)
        if isinstance(value, (int, float, str)) and not isinstance(value, bool) and len(shown) < 3:
            shown.append((key, value))
    return {"name": job.name, "preset": job.preset, "shown": shown, "updated": job.updated[:16].replace("T", " "),
            "counts": ", ".join(f"{v} {k}" for k, v in job.counts.items()), "rows": flatten(job.settings)}


def _counts(units: Iterable[Unit]) -> tuple[int, int]:
    units = list(units)
    return sum(u.published for u in units), len(units)


# -------------------------------------------------------------------------------------------------- pages


def home(atlas: Atlas, plan: MediaPlan) -> Page:
    path = "index.md"
    done, total = _counts(atlas.units)
    models = []
    for model in atlas.models:
        mdone, mtotal = _counts(model.units)
        models.append({
            "name": model.name, "url": layout.rel(path, layout.page_url(layout.model_page(model.name))),
            "thumbs": strip(path, model.units, plan, 10), "layers": len(model.feature_layers),
            "logits": model.logits is not None, "done": mdone, "total": mtotal,
            "jobs": [job_view(job) for job in model.jobs],
        })
    text = _render("home.md", {"title": "Atlas", "hide": ["navigation", "toc"]}, models=models, done=done,
                   total=total, dropped=plan.dropped, compare=layout.rel(path, layout.page_url("compare.md")))
    return Page(path, text)


def model_overview(model: Model, plan: MediaPlan) -> Page:
    path = layout.model_page(model.name)
    card = model.card
    done, total = _counts(model.units)
    layers = []
    for layer in model.layers:
        ldone, ltotal = _counts(layer.units)
        spec = layer.spec
        if layer.is_logits:
            what, name = f"{_n(len(model.classes) or ltotal)} classes", "Class logits"
        else:
            what = f"{_n(spec.channels)} channels" if spec.channels else "channels unknown"
            if spec.height and spec.width:
                what += f" · {spec.height}×{spec.width}"
            name = layer.name
        layers.append({"url": layout.rel(path, layout.page_url(layout.layer_page(model.name, layer.name))),
                       "title": name, "what": what, "thumbs": strip(path, layer.units, plan, 8), "done": ldone,
                       "total": ltotal})
    shown = {layer.name for layer in model.layers}
    info = [
        ("Source", card.get("source")),
        ("Weights fingerprint", card.get("weights")),
        ("Input size", f"{card['input_size']} px" + (" (its only size: every view is resampled to it)"
                                                     if card.get("fixed_size") else "") if card.get("input_size") else None),
        ("Input channels", f"{card['input_channels']}, shown as {card.get('shown_as', 'rgb')}"
         if card.get("input_channels") not in (None, 3) else None),
        ("Normalisation", f"mean {card.get('mean')}, std {card.get('std')}" if card.get("mean") else None),
        ("Layers", f"{len(model.all_layers)} offered, {len(model.feature_layers)} rendered"),
        ("Classes", _n(len(model.classes)) if model.classes else None),
    ]
    filters = layout.rel(path, plan.filters[model.name]) if model.name in plan.filters else None
    text = _render("model.md", {"title": title(model.name)}, name=model.name, layer_count=len(model.feature_layers),
                   done=done, total=total, layers=layers, others=[s for s in model.all_layers if s.name not in shown],
                   filters=filters, info=[(k, v) for k, v in info if v], jobs=[job_view(j) for j in model.jobs])
    return Page(path, text)


def layer_grid(model: Model, layer: Layer, plan: MediaPlan) -> Page:
    path = layout.layer_page(model.name, layer.name)
    done, total = _counts(layer.units)
    spec = layer.spec
    facts = [(_n(done), "rendered"), (_n(total - done), "pending")]
    if spec.channels:
        facts.insert(0, (_n(spec.channels), "channels"))
    if spec.height and spec.width:
        facts.append((f"{spec.height}×{spec.width}", "spatial"))
    kinds: dict[str, list[Unit]] = {}
    for unit in layer.units:
        kinds.setdefault(unit.kind, []).append(unit)
    sections = [{"title": KIND_TITLES.get(kind, kind.title()), "cells": [cell(path, u, plan, filterable=True) for u in units]}
                for kind, units in kinds.items()]
    meta = {"title": title(f"{layer.name} · {model.name}"), "hide": ["toc"], "search": {"exclude": True}}
    text = _render("layer.md", meta, layer=layer.name, model=model.name, facts=facts, done=done, total=total,
                   sections=sections)
    return Page(path, text)


def logits_grid(model: Model, layer: Layer, plan: MediaPlan) -> Page:
    path = layout.layer_page(model.name, layer.name)
    done, total = _counts(layer.units)
    # indexed on purpose: the global search finds a class by name, and the filter box picks up its ?h=
    # highlight parameter, so the grid opens filtered to that class
    text = _render("logits.md", {"title": title(f"Class logits · {model.name}"), "hide": ["toc"]},
                   model=model.name, classes=len(model.classes) or total, total=total, done=done,
                   page_size=LOGITS_PAGE_SIZE, cells=[cell(path, u, plan, filterable=True) for u in layer.units])
    return Page(path, text)


def compare(atlas: Atlas, plan: MediaPlan) -> Page:
    path = "compare.md"
    with_logits = [m for m in atlas.models if m.logits]
    by_class: dict[int, dict[str, Unit]] = {}
    names: dict[int, str] = {}
    for model in with_logits:
        for unit in model.logits.units if model.logits else []:
            if unit.index is None:
                continue
            by_class.setdefault(unit.index, {})[model.name] = unit
            names.setdefault(unit.index, unit.label)
    rows = []
    for index in sorted(by_class):
        cells = []
        for model in with_logits:
            unit = by_class[index].get(model.name)
            cells.append(cell(path, unit, plan, label=model.name) if unit else None)
        rows.append({"index": index, "name": names[index], "search": f"{index} {names[index]}".lower(), "cells": cells})
    models = [{"name": m.name, "url": layout.rel(path, layout.page_url(layout.model_page(m.name)))} for m in with_logits]
    meta = {"title": "Compare classes", "hide": ["toc"], "search": {"exclude": True}}
    return Page(path, _render("compare.md", meta, models=models, rows=rows, page_size=COMPARE_PAGE_SIZE))


def render_pages(atlas: Atlas, plan: MediaPlan) -> list[Page]:
    pages = [home(atlas, plan), compare(atlas, plan)]
    for model in atlas.models:
        pages.append(model_overview(model, plan))
        for layer in model.layers:
            pages.append(logits_grid(model, layer, plan) if layer.is_logits else layer_grid(model, layer, plan))
    return pages


def nav(atlas: Atlas) -> list[Any]:
    """Top tabs: Atlas, one per model (its overview, layers, logits), Compare. Titles escaped (see `title`)."""
    items: list[Any] = [{"Atlas": "index.md"}]
    for model in atlas.models:
        children: list[Any] = [layout.model_page(model.name)]
        for layer in model.layers:
            children.append({"Class logits" if layer.is_logits else title(layer.name): layout.layer_page(model.name, layer.name)})
        items.append({title(model.name): children})
    items.append({"Compare": "compare.md"})
    return items
