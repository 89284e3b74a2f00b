"""Generate the gallery's Markdown pages (and the nav) from an Atlas and its media plan.

Few pages, by design: home, one overview per model, one grid per layer (every channel), one page of class
logits per model, one comparison page. No page per unit (MkDocs embeds the nav in every page, so thousands
of pages would be slow and large); unit details come from per-unit JSON in the lightbox. Layer grids and
the comparison are excluded from the search index (thousands of thumbnails, not text); the class-logit
pages stay in it so a class can be found by name. Grid pages hide the TOC for width.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

import yaml

from featvis_site import layout
from featvis_site.atlas import Atlas, Job, Layer, Model, Unit
from featvis_site.cells import a, cell, chips, grid, progress, strip, toolbar
from featvis_site.media import MediaPlan

LOGITS_PAGE_SIZE = 120
COMPARE_PAGE_SIZE = 30
KIND_TITLES = {"channel": "Channels", "neuron": "Neurons", "negative": "Negative channels", "layer": "DeepDream"}


@dataclass(frozen=True)
class Page:
    path: str  # relative to docs_dir
    text: str


def front_matter(**meta: Any) -> str:
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n"


def md(text: str) -> str:
    """Text safe inside a Markdown heading: HTML-escaped, Markdown punctuation backslash-escaped."""
    return a("".join("\\" + c if c in "\\`*_{}[]()#+!" else c for c in text))


def _n(x: int) -> str:
    return f"{x:,}"


def flatten(settings: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested settings as dotted keys with JSON-ish values, for a two-column table."""
    rows: list[tuple[str, str]] = []
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows += flatten(value, f"{name}.")
        elif isinstance(value, str):
            rows.append((name, value))
        else:
            rows.append((name, json.dumps(value)))
    return rows


def settings_summary(job: Job) -> str:
    """One line: preset plus a few telling settings (steps, size...)."""
    parts = [f"preset <code>{a(job.preset)}</code>"] if job.preset else []
    shown = 0
    for key in ("steps", "size", "image_size", "param", "lr", "diversity"):
        value = job.settings.get(key)
        if isinstance(value, (int, float, str)) and not isinstance(value, bool) and shown < 3:
            parts.append(f"{a(key)} <code>{a(value)}</code>")
            shown += 1
    return " · ".join(parts) or "default settings"


def job_details(job: Job, *, open_: bool = False) -> str:
    rows = "".join(f"<div><dt>{a(k)}</dt><dd>{a(v)}</dd></div>" for k, v in flatten(job.settings))
    counts = ", ".join(f"{v} {k}" for k, v in job.counts.items())
    # settings lists run to dozens of keys: a multi-column list, not a long two-column table
    table = f'<dl class="fv-settings">{rows}</dl>' if rows else "<p>The manifest records no settings.</p>"
    return (
        f'<details class="abstract"{" open" if open_ else ""}><summary>Job <code>{a(job.name)}</code> · '
        f'{settings_summary(job)} · updated {a(job.updated[:16].replace("T", " "))}</summary>'
        f'<p>{a(counts)}</p>{table}</details>'
    )


def _counts(units: Iterable[Unit]) -> tuple[int, int]:
    units = list(units)
    return sum(u.published for u in units), len(units)


# -------------------------------------------------------------------------------------------------- pages


def home(atlas: Atlas, plan: MediaPlan) -> Page:
    path = "index.md"
    done, total = _counts(atlas.units)
    cards = []
    for model in atlas.models:
        mdone, mtotal = _counts(model.units)
        url = layout.rel(path, layout.page_url(layout.model_page(model.name)))
        settings = "<br>".join(settings_summary(j) + f" (job <code>{a(j.name)}</code>)" for j in model.jobs)
        logits = model.logits
        cards.append(
            f'<li><p class="fv-card-title"><a href="{url}"><strong>{a(model.name)}</strong></a></p><hr>'
            f'<a class="fv-strip-link" href="{url}">{strip(path, model.units, plan, 10)}</a>'
            f"<p>{len(model.feature_layers)} layer{'s' * (len(model.feature_layers) != 1)}"
            f"{' + class logits' if logits else ''} · <b>{_n(mdone)}</b> of {_n(mtotal)} units rendered</p>"
            f"{progress(mdone, mtotal)}"
            f'<p class="fv-dim">{settings}</p></li>'
        )
    notes = ""
    if plan.dropped:
        notes = (
            '!!! warning "Some media are left out"\n\n'
            f"    To stay under GitHub Pages' 1 GB limit this build leaves out: {', '.join(plan.dropped)}.\n\n"
        )
    compare = layout.rel(path, layout.page_url("compare.md"))
    text = (
        front_matter(title="Atlas", hide=["navigation", "toc"])
        + "# featvis atlas\n\n"
        + "Feature visualisations of image classifiers: every channel of the selected layers and the class "
        + "logits, each found by activation maximisation. Hover a thumbnail to watch its optimisation; click it "
        + "for the full image, the video and its numbers.\n\n"
        + chips([(_n(len(atlas.models)), "models"), (_n(done), "units rendered"), (_n(total - done), "pending")])
        + "\n\n"
        + notes
        + "## Models\n\n"
        + f'<div class="grid cards fv-models"><ul>\n{chr(10).join(cards)}\n</ul></div>\n\n'
        + "## Compare\n\n"
        + f'<p>See <a href="{compare}">the same classes side by side</a> across the models of this atlas.</p>\n'
    )
    return Page(path, text)


def model_overview(model: Model, plan: MediaPlan) -> Page:
    path = layout.model_page(model.name)
    card = model.card
    done, total = _counts(model.units)
    layer_cards = []
    for layer in model.layers:
        url = layout.rel(path, layout.page_url(layout.layer_page(model.name, layer.name)))
        ldone, ltotal = _counts(layer.units)
        spec = layer.spec
        if layer.is_logits:
            what = f"{_n(len(model.classes) or ltotal)} classes"
            title = "Class logits"
        else:
            what = f"{_n(spec.channels)} channels" if spec.channels else "channels unknown"
            if spec.height and spec.width:
                what += f" · {spec.height}×{spec.width}"
            title = layer.name
        pending = f" ({_n(ltotal - ldone)} pending)" if ltotal > ldone else ""
        layer_cards.append(
            f'<li><p class="fv-card-title"><a href="{url}"><strong>{a(title)}</strong></a>'
            f' <span class="fv-dim">{a(what)}</span></p><hr>'
            f'<a class="fv-strip-link" href="{url}">{strip(path, layer.units, plan, 8)}</a>'
            f"<p><b>{_n(ldone)}</b> of {_n(ltotal)} units rendered{pending}</p>{progress(ldone, ltotal)}</li>"
        )
    shown = {layer.name for layer in model.layers}
    others = [s for s in model.all_layers if s.name not in shown]
    others_html = ""
    if others:
        names = ", ".join(f"<code>{a(s.name)}</code>" + (f" ({s.channels})" if s.channels else "") for s in others)
        others_html = (
            f'<details class="note"><summary>{len(others)} more layer{"s" * (len(others) != 1)} of this model'
            f" {'have' if len(others) != 1 else 'has'} no rendered units</summary><p>{names}</p></details>\n\n"
        )
    info_rows = [
        ("Source", card.get("source")),
        ("Weights fingerprint", card.get("weights")),
        ("Input size", f"{card['input_size']} px" if card.get("input_size") else None),
        ("Normalisation", f"mean {card.get('mean')}, std {card.get('std')}" if card.get("mean") else None),
        ("Layers", f"{len(model.all_layers)} offered, {len(model.feature_layers)} rendered"),
        ("Classes", _n(len(model.classes)) if model.classes else None),
    ]
    info = "".join(f"<tr><td>{a(k)}</td><td><code>{a(v)}</code></td></tr>" for k, v in info_rows if v)
    filters = ""
    if model.name in plan.filters:
        src = layout.rel(path, plan.filters[model.name])
        filters = (
            "## First-layer filters\n\n"
            f'<figure class="fv-filters"><a href="{src}"><img src="{src}" alt="First-layer filters of '
            f'{a(model.name)} as RGB tiles" loading="lazy"></a><figcaption>The first convolution\'s filters, '
            "each drawn as a small RGB tile.</figcaption></figure>\n\n"
        )
    jobs = "\n".join(job_details(job, open_=len(model.jobs) == 1) for job in model.jobs)
    text = (
        front_matter(title=model.name)
        + f"# {md(model.name)}\n\n"
        + chips([(_n(len(model.feature_layers)), "layers"), (_n(done), "units rendered"),
                 (_n(total - done), "pending")])
        + "\n\n## Layers\n\n"
        + f'<div class="grid cards fv-layers"><ul>\n{chr(10).join(layer_cards)}\n</ul></div>\n\n'
        + others_html
        + filters
        + "## Model\n\n"
        + f"<table><tbody>{info}</tbody></table>\n\n"
        + "## Render settings\n\n"
        + jobs
        + "\n"
    )
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
    sections = []
    for kind, units in kinds.items():
        heading = f"## {KIND_TITLES.get(kind, kind.title())}\n\n" if len(kinds) > 1 else ""
        sections.append(
            heading
            + '<div class="fv-browser">'
            + toolbar("Go to channel number…", 0, f"Find a unit of {layer.name}")
            + "\n"
            + grid(path, units, plan, filterable=True)
            + "\n</div>\n"
        )
    text = (
        front_matter(title=f"{layer.name} · {model.name}", hide=["toc"], search={"exclude": True})
        + f"# {md(layer.name)} <small>{a(model.name)}</small>\n\n"
        + chips(facts)
        + "\n"
        + progress(done, total)
        + "\n\n"
        + '<p class="fv-hint">Hover or focus a unit to play its optimisation; click it for details. '
        + "Use ← → in the viewer to step through units.</p>\n\n"
        + "\n".join(sections)
    )
    return Page(path, text)


def logits_grid(model: Model, layer: Layer, plan: MediaPlan) -> Page:
    path = layout.layer_page(model.name, layer.name)
    done, total = _counts(layer.units)
    n_classes = len(model.classes) or total
    text = (
        # indexed on purpose: the global search finds a class by name, and the filter box picks up its
        # ?h= highlight parameter, so the grid opens filtered to that class
        front_matter(title=f"Class logits · {model.name}", hide=["toc"])
        + f"# Class logits <small>{a(model.name)}</small>\n\n"
        + chips([(_n(n_classes), "classes"), (_n(total), "in jobs"), (_n(done), "rendered"),
                 (_n(total - done), "pending")])
        + "\n"
        + progress(done, total)
        + "\n\n"
        + '<div class="fv-browser">'
        + toolbar(f"Filter {_n(total)} classes by name or number…", LOGITS_PAGE_SIZE, "Filter classes")
        + "\n"
        + grid(path, layer.units, plan, css="fv-logits", filterable=True)
        + "\n</div>\n"
    )
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
    head = "".join(
        f'<a class="fv-col" href="{layout.rel(path, layout.page_url(layout.model_page(m.name)))}">{a(m.name)}</a>'
        for m in with_logits
    )
    rows = []
    for index in sorted(by_class):
        cells = []
        for model in with_logits:
            unit = by_class[index].get(model.name)
            cells.append(cell(path, unit, plan, label=model.name) if unit else '<div class="fv-cell fv-absent" title="not in any job">'
                         '<span class="fv-ph" aria-hidden="true"></span><span class="fv-cap">—</span></div>')
        rows.append(
            f'<div class="fv-row" data-name="{a(f"{index} {names[index]}".lower())}" data-i="{index}">'
            f'<div class="fv-row-label"><b>{index}</b> {a(names[index])}</div>{"".join(cells)}</div>'
        )
    cols = max(1, len(with_logits))
    note = ""
    if len(with_logits) < 2:
        note = (
            '!!! info "One model so far"\n\n'
            "    Comparison needs the class logits of two or more models. Render another model's logits "
            "(e.g. add a job to flows.yaml) and rebuild; until then this page shows the one model.\n\n"
        )
    body = (
        '<div class="fv-browser">'
        + toolbar(f"Filter {_n(len(by_class))} classes by name or number…", COMPARE_PAGE_SIZE, "Filter classes")
        + f'\n<div class="fv-compare fv-filterable" style="--fv-cols:{cols}">'
        + f'<div class="fv-compare-head"><span>Class</span>{head}</div>\n'
        + "\n".join(rows)
        + "\n</div></div>\n"
    ) if rows else "<p>No model in this atlas has rendered class logits yet.</p>\n"
    text = (
        front_matter(title="Compare classes", hide=["toc"], search={"exclude": True})
        + "# Compare classes across models\n\n"
        + "The same class logit, rendered for every model of the atlas, side by side.\n\n"
        + note
        + body
    )
    return Page(path, text)


def render_pages(atlas: Atlas, plan: MediaPlan) -> list[Page]:
    pages = [home(atlas, plan), compare(atlas, plan)]
    for model in atlas.models:
        pages.append(model_overview(model, plan))
        for layer in model.layers:
            pages.append(logits_grid(model, layer, plan) if layer.is_logits else layer_grid(model, layer, plan))
    return pages


def nav(atlas: Atlas) -> list[Any]:
    """Top tabs: Atlas, one per model (its overview, layers, logits), Compare."""
    items: list[Any] = [{"Atlas": "index.md"}]
    for model in atlas.models:
        children: list[Any] = [layout.model_page(model.name)]
        for layer in model.layers:
            title = "Class logits" if layer.is_logits else layer.name
            children.append({title: layout.layer_page(model.name, layer.name)})
        items.append({model.name: children})
    items.append({"Compare": "compare.md"})
    return items
