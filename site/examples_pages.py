"""Real images beside synthetic ones in the gallery: dataset examples and circuit links in each unit's
lightbox, an "Explain" page per model, and the eternal-zoom dives on the class-logit page.

Reads the extras manifests the pipeline writes (``examples/manifests/<job>.json``, pipeline/STORE.md).
A store is untrusted: every manifest is validated with pydantic, every path must match its layout pattern
and stay inside the store, every file shown must match the sha256 recorded for it, and every string
reaches a page through an autoescaping Jinja template (or, in the lightbox, through ``textContent``).
Anything that fails is left out with a warning; the rest of the gallery builds as usual.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from featvis_site import layout
from featvis_site.atlas import Atlas, Model, Unit
from featvis_pipeline.storeformat import StoreFormatError, contained, read_capped, sha256_file
from featvis_site.text import finalize, join

MANIFESTS = "examples/manifests"
THUMB_PATH = re.compile(r"examples/images/[0-9a-f]{16}/(v0000|[0-9a-f]{8}-v\d{4})\.webp")
EXPLAIN_PATH = re.compile(r"examples/explain/[A-Za-z0-9_.-]+/[0-9a-f]{16}@[0-9a-f]{12}")
CIRCUIT_PATH = re.compile(r"circuits/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+@[0-9a-f]{16}\.json")
ZOOM_PATH = re.compile(r"zoom/[A-Za-z0-9_.-]+/k\d{4}@[0-9a-f]{12}")
HEX16 = re.compile(r"[0-9a-f]{16}")
MAX_JSON = 64_000_000  # bytes: a manifest beyond this is not read
TEMPLATES = Path(__file__).resolve().parent / "templates"
_env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, finalize=finalize,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_env.filters["join"] = join


def _contained(root: Path, relative: str) -> Path:
    """`root/relative`, refused (ValueError) when it leaves `root` or goes through a symbolic link on the way
    (the store format's own rule: a store's links are never followed, extras included)."""
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"{relative!r} is not a path inside the store")
    try:
        return contained(root, relative)
    except StoreFormatError:
        raise ValueError(f"{relative} goes through a symbolic link or leaves the store") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=False)


class _Checksum(_Strict):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class _ExampleImage(_Strict):
    id: str = Field(pattern=r"^[0-9a-f]{16}$")
    name: str = Field(max_length=500)


class _Examples(_Strict):
    crop_key: str = Field(pattern=r"^[0-9a-f]{8}$")
    images: list[_ExampleImage]
    units: dict[str, dict[str, list[tuple[float, str, int]]]]
    thumbs: dict[str, _Checksum]
    count: int = 0
    folder: str = ""


class _Explain(_Strict):
    layer: str = Field(max_length=200)
    images: dict[str, str]


class _Manifest(_Strict):
    job: str
    model: str
    examples: _Examples | None = None
    explain: _Explain | None = None
    circuits: dict[str, str] = Field(default_factory=dict)
    zoom: dict[str, str] = Field(default_factory=dict)


class _Circuit(_Strict):
    layer: str
    previous: str
    upstream: dict[str, list[tuple[int, float]]]
    downstream: dict[str, list[tuple[int, float]]]


class _Prediction(_Strict):
    class_: int = Field(alias="class", ge=0)
    label: str = Field(max_length=300)
    p: float = Field(ge=0, le=1)


class _ExplainMeta(_Strict):
    image: str = Field(pattern=r"^[0-9a-f]{16}$")
    name: str = Field(max_length=500)
    layer: str = Field(max_length=200)
    top5: list[_Prediction]
    channels: list[dict[str, float]]
    files: dict[str, Any]


class _ZoomMeta(_Strict):
    index: int = Field(ge=0)
    label: str = Field(max_length=300)
    files: dict[str, Any]


@dataclass(frozen=True)
class Example:
    score: float
    image: str
    view: int
    thumb: str  # store-relative
    name: str


@dataclass
class Explained:
    id: str
    name: str
    files: dict[str, str]  # role -> store-relative path
    top5: list[tuple[int, str, float]]
    channels: list[tuple[int, float, str]]  # (channel, mean activation, map path)


@dataclass
class Dive:
    index: int
    label: str
    mp4: str
    poster: str


@dataclass
class ModelExtras:
    examples: dict[str, dict[str, list[Example]]] = field(default_factory=dict)  # unit id -> top/bottom
    upstream: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # unit id -> [(unit id, weight)]
    downstream: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    explain_layer: str | None = None
    explained: list[Explained] = field(default_factory=list)
    dives: list[Dive] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)  # store-relative -> verified file
    image_count: int = 0


@dataclass
class Extras:
    models: dict[str, ModelExtras] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def of(self, model: Model) -> ModelExtras | None:
        return self.models.get(model.name)


# ---------------------------------------------------------------------------------------------- reading


def _json(path: Path) -> Any:
    """A JSON file of the store: a regular file (never a link, a FIFO or a device), at most MAX_JSON bytes."""
    try:
        data = read_capped(path, MAX_JSON)
    except FileNotFoundError:
        raise ValueError("missing") from None
    except OSError as error:
        raise ValueError(f"unreadable ({error.strerror})") from None
    return json.loads(data.decode("utf-8"))


def _checked(root: Path, relative: str, pattern: re.Pattern | None, expected: dict[str, Any] | None) -> Path:
    """A store file after its checks: layout pattern, containment, size and sha256 when recorded."""
    if pattern is not None and not pattern.fullmatch(relative):
        raise ValueError(f"{relative!r} is not where the store layout puts it")
    path = _contained(root, relative)
    if not path.is_file():
        raise ValueError(f"{relative} is missing or not a regular file")
    if expected is not None:
        if not isinstance(expected.get("bytes"), int) or path.stat().st_size != expected["bytes"]:
            raise ValueError(f"{relative} has the wrong size")
        if sha256_file(path) != expected.get("sha256"):
            raise ValueError(f"{relative} fails its sha256 check")
    return path


def _unit_files(root: Path, folder: str, pattern: re.Pattern) -> tuple[dict[str, Any], dict[str, str], dict[str, Path]]:
    """meta.json of a unit-like folder (explain image, zoom dive) and its verified files by role."""
    if not pattern.fullmatch(folder):
        raise ValueError(f"{folder!r} is not where the store layout puts it")
    meta = _json(_checked(root, f"{folder}/meta.json", None, None))
    if not isinstance(meta, dict) or meta.get("status") != "done" or not isinstance(meta.get("files"), dict):
        raise ValueError(f"{folder}/meta.json is not a finished unit")
    roles, verified = {}, {}
    for role, value in meta["files"].items():
        for entry in value if isinstance(value, list) else [value]:
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                raise ValueError(f"{folder}: bad file entry {role!r}")
            relative = f"{folder}/{entry['path']}"
            _contained(root / folder, entry["path"])  # never outside its own folder, never through a link
            verified[relative] = _checked(root, relative, None, entry)
            roles[role if not isinstance(value, list) else entry["path"]] = relative
    return meta, roles, verified


def read_extras(atlas: Atlas) -> Extras:
    """Every extras manifest of the store, checked; what fails is left out with a warning."""
    root, extras = atlas.root, Extras()
    try:
        folder = _contained(root, MANIFESTS)
    except ValueError as error:
        extras.warnings.append(f"{MANIFESTS}: left out ({error})")
        return extras
    paths = sorted(p for p in folder.glob("*.json") if not p.name.startswith(".")) if folder.is_dir() else []
    models = {m.name: m for m in atlas.models}
    for path in paths:
        try:
            manifest = _Manifest.model_validate(_json(path))
        except (ValueError, ValidationError) as error:
            extras.warnings.append(f"{path.name}: not a valid extras manifest ({str(error).splitlines()[0]})")
            continue
        model = models.get(manifest.model)
        if model is None:
            continue
        got = extras.models.setdefault(model.name, ModelExtras())
        _read_examples(root, manifest, model, got, extras.warnings)
        _read_explain(root, manifest, got, extras.warnings)
        _read_circuits(root, manifest, model, got, extras.warnings)
        _read_zoom(root, manifest, got, extras.warnings)
    return extras


def _read_examples(root: Path, manifest: _Manifest, model: Model, got: ModelExtras, warnings: list[str]) -> None:
    section = manifest.examples
    if section is None:
        return
    names = {image.id: image.name for image in section.images}
    known = {u.unit for u in model.units}
    got.image_count = max(got.image_count, section.count)
    for unit_id, lists in section.units.items():
        if unit_id not in known:
            continue
        chosen: dict[str, list[Example]] = {}
        for which in ("top", "bottom"):
            shown = []
            for score, ident, view in lists.get(which, [])[:64]:
                if not HEX16.fullmatch(ident) or not 0 <= view < 100_000:
                    continue
                name = "v0000" if view == 0 else f"{section.crop_key}-v{view:04d}"
                relative = f"examples/images/{ident}/{name}.webp"
                try:
                    if relative not in got.files:
                        recorded = section.thumbs.get(relative)
                        if recorded is None:
                            raise ValueError(f"{relative} has no recorded checksum")
                        got.files[relative] = _checked(root, relative, THUMB_PATH, recorded.model_dump())
                except ValueError as error:
                    warnings.append(f"{manifest.job}: example left out: {error}")
                    continue
                shown.append(Example(float(score), ident, view, relative, names.get(ident, ident)))
            chosen[which] = shown
        got.examples[unit_id] = chosen


def _read_explain(root: Path, manifest: _Manifest, got: ModelExtras, warnings: list[str]) -> None:
    if manifest.explain is None:
        return
    got.explain_layer = manifest.explain.layer
    seen = {e.id for e in got.explained}
    for ident, folder in manifest.explain.images.items():
        if ident in seen:
            continue
        try:
            meta, roles, verified = _unit_files(root, folder, EXPLAIN_PATH)
            data = _ExplainMeta.model_validate(meta)
            maps = [r for r in roles if r.startswith("maps/")]
            channels = []
            for entry, relative in zip(data.channels, [roles[m] for m in maps]):
                channels.append((int(entry.get("channel", -1)), float(entry.get("mean", 0.0)), relative))
            if not all(k in roles for k in ("view", "saliency", "smoothgrad")):
                raise ValueError("an explain image lacks its view or saliency maps")
        except (ValueError, ValidationError) as error:
            warnings.append(f"{manifest.job}: explain page of {ident} left out ({str(error).splitlines()[0]})")
            continue
        got.files.update(verified)
        got.explained.append(Explained(data.image, data.name, roles,
                                       [(p.class_, p.label, p.p) for p in data.top5], channels))


def _read_circuits(root: Path, manifest: _Manifest, model: Model, got: ModelExtras, warnings: list[str]) -> None:
    layers = {layer.name: layer for layer in model.layers}
    for layer_name, relative in manifest.circuits.items():
        try:
            data = _Circuit.model_validate(_json(_checked(root, relative, CIRCUIT_PATH, None)))
        except (ValueError, ValidationError) as error:
            warnings.append(f"{manifest.job}: circuit links of {layer_name} left out ({str(error).splitlines()[0]})")
            continue
        if data.layer not in layers or data.previous not in layers:
            continue
        ident = lambda layer, index: _unit_id(model, layer, index)  # noqa: E731
        for unit, links in data.upstream.items():
            me = ident(data.layer, _int(unit))
            if me:
                got.upstream[me] = [(other, w) for c, w in links if (other := ident(data.previous, c))]
        for unit, links in data.downstream.items():
            me = ident(data.previous, _int(unit))
            if me:
                got.downstream[me] = [(other, w) for c, w in links if (other := ident(data.layer, c))]


def _int(text: str) -> int:
    return int(text) if text.isascii() and text.isdecimal() else -1


_INDEX: dict[int, tuple[Model, dict]] = {}


def _units_of(model: Model) -> dict[Any, tuple[str, Unit]]:
    """(layer, index) and unit id -> (layer name, unit) for the model's published channels and logits,
    built once per model (links are looked up for every unit of a whole-model atlas)."""
    cached = _INDEX.get(id(model))
    if cached is None or cached[0] is not model:
        table: dict[Any, tuple[str, Unit]] = {}
        for layer in model.layers:
            for unit in layer.units:
                if unit.published:
                    table[unit.unit] = (layer.name, unit)
                    if unit.kind in ("channel", "logit"):
                        table.setdefault((layer.name, unit.index), (layer.name, unit))
        cached = _INDEX[id(model)] = (model, table)
    return cached[1]


def _unit_id(model: Model, layer: str, index: int) -> str | None:
    found = _units_of(model).get((layer, index))
    return found[1].unit if found else None


def _read_zoom(root: Path, manifest: _Manifest, got: ModelExtras, warnings: list[str]) -> None:
    seen = {d.index for d in got.dives}
    for unit, folder in manifest.zoom.items():
        try:
            meta, roles, verified = _unit_files(root, folder, ZOOM_PATH)
            data = _ZoomMeta.model_validate(meta)
            if "mp4" not in roles or "poster" not in roles:
                raise ValueError("a dive lacks its video or poster")
        except (ValueError, ValidationError) as error:
            warnings.append(f"{manifest.job}: zoom dive {unit} left out ({str(error).splitlines()[0]})")
            continue
        if data.index in seen:
            continue
        got.files.update(verified)
        got.dives.append(Dive(data.index, data.label, roles["mp4"], roles["poster"]))


# ---------------------------------------------------------------------------------------------- pages


def explain_page(model: Model) -> str:
    return f"{layout.MODELS}/{layout.safe_name(model.name)}/explain.md"


def _front(title: str, **more: Any) -> str:
    return "---\n" + yaml.safe_dump({"title": title, **more}, sort_keys=False) + "---\n\n"


def _unit_link(page: str, model: Model, unit_id: str, plan: Any) -> dict[str, Any] | None:
    """Where a unit's lightbox opens (its layer page with #k=) and its thumbnail, seen from `page`."""
    found = _units_of(model).get(unit_id)
    if found is None or plan.assets(found[1]) is None:
        return None
    layer, unit = found
    target = layout.page_url(layout.layer_page(model.name, layer))
    return {"href": layout.rel(page, target, f"k={unit.key12}"), "thumb": layout.rel(page, plan.assets(unit).thumb),
            "label": unit.label, "unit": unit.unit}


def render_explain(model: Model, got: ModelExtras, plan: Any) -> tuple[str, str]:
    page = explain_page(model)
    images = []
    for item in got.explained:
        channels = []
        for channel, mean, heat in item.channels:
            unit = _unit_id(model, got.explain_layer or "", channel)
            channels.append({"channel": channel, "mean": mean, "map": layout.rel(page, layout.media_path(heat)),
                             "link": _unit_link(page, model, unit, plan) if unit else None})
        images.append({
            "id": item.id, "name": item.name,
            "view": layout.rel(page, layout.media_path(item.files["view"])),
            "saliency": layout.rel(page, layout.media_path(item.files["saliency"])),
            "smoothgrad": layout.rel(page, layout.media_path(item.files["smoothgrad"])),
            "top5": [{"index": c, "label": label, "p": p} for c, label, p in item.top5],
            "channels": channels,
        })
    filters = layout.rel(page, plan.filters[model.name]) if model.name in plan.filters else None
    body = _env.get_template("explain.html.j2").render(model=model.name, layer=got.explain_layer, images=images,
                                                       filters=filters)
    return page, _front("Explain an image", hide=["toc"]) + "# Explain an image\n\n" + body


def render_dives(page: str, got: ModelExtras) -> str:
    dives = [{"label": d.label, "index": d.index, "mp4": layout.rel(page, layout.media_path(d.mp4)),
              "poster": layout.rel(page, layout.media_path(d.poster))} for d in sorted(got.dives, key=lambda d: d.index)]
    return _env.get_template("dives.html.j2").render(dives=dives) if dives else ""


def add_pages(pages: list[Any], atlas: Atlas, plan: Any, extras: Extras, page_type: type) -> list[Any]:
    """The Explain pages, and the dives appended to each class-logit page."""
    out = list(pages)
    for model in atlas.models:
        got = extras.of(model)
        if got is None:
            continue
        for path, text in _media(got, plan):
            plan.links[path] = text
        if got.explained:
            out.append(page_type(*render_explain(model, got, plan)))
        if got.dives and model.logits is not None:
            logits = layout.layer_page(model.name, model.logits.name)
            out = [page_type(p.path, p.text + "\n" + render_dives(logits, got)) if p.path == logits else p for p in out]
    return out


def _media(got: ModelExtras, plan: Any) -> list[tuple[str, Path]]:
    plan.bytes += sum(p.stat().st_size for p in got.files.values())
    return [(layout.media_path(relative), path) for relative, path in got.files.items()]


def nav(items: list[Any], atlas: Atlas, extras: Extras) -> list[Any]:
    """The Explain page under its model's tab: the tab whose first entry is the model's overview page (its
    title is the escaped name, which two names may share)."""
    for model in atlas.models:
        got = extras.of(model)
        if not got or not got.explained:
            continue
        overview = layout.model_page(model.name)
        for item in items:
            children = next(iter(item.values())) if isinstance(item, dict) and len(item) == 1 else None
            if isinstance(children, list) and children[:1] == [overview]:
                children.append({"Explain": explain_page(model)})
    return items


# ---------------------------------------------------------------------------------------------- lightbox


def unit_extras(model: Model, unit: Unit, assets: Any, plan: Any, extras: Extras) -> dict[str, Any]:
    """What the lightbox adds for a unit: its strongest and most negative real examples (each linking to
    its Explain section when it has one) and its circuit links. URLs are relative to unit.json."""
    got = extras.of(model)
    if got is None:
        return {}
    folder = assets.folder
    rel = lambda site_path: posixpath.relpath(site_path, folder)  # noqa: E731
    explained = {e.id for e in got.explained}
    explain_url = layout.page_url(explain_page(model))
    record: dict[str, Any] = {}
    lists = got.examples.get(unit.unit)
    if lists:
        def shown(example: Example) -> dict[str, Any]:
            href = rel(explain_url) + f"/#img-{example.image}" if example.image in explained else None
            what = "whole image" if example.view == 0 else f"crop {example.view}"
            return {"src": rel(layout.media_path(example.thumb)), "href": href, "score": round(example.score, 3),
                    "name": f"{example.name} ({what})"}

        record["examples"] = {"top": [shown(e) for e in lists.get("top", [])],
                              "bottom": [shown(e) for e in lists.get("bottom", [])], "images": got.image_count}
    circuits = {}
    for direction, links in (("upstream", got.upstream.get(unit.unit)), ("downstream", got.downstream.get(unit.unit))):
        shown_links = []
        for other, weight in links or []:
            target = _unit_link("index.md", model, other, plan)  # site-root relative, then made unit.json-relative
            if target:
                page, key = target["href"].split("#", 1)
                shown_links.append({"href": rel(page.rstrip("/")) + "/#" + key, "src": rel(target["thumb"]),
                                    "label": target["label"], "unit": target["unit"], "weight": weight})
        if shown_links:
            circuits[direction] = shown_links
    if circuits:
        record["circuits"] = circuits
    return record
