"""Decide which store files the site publishes, under GitHub Pages' size limits.

Files are published as-is (no re-encoding): the store's WebP images and H.264 videos are already web
formats. A unit's MP4 is both its lightbox video and its grid cell's hover preview. When the total would
exceed the budget (default 900 MB, under Pages' 1 GB), optional media are dropped tier by tier (diversity
images, then channel MP4s, then class-logit MP4s; a unit without its MP4 has no hover preview) rather than
failing the build, and the home page says what was left out. Thumbnails and images are never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from featvis_site import layout
from featvis_site.atlas import Atlas, Unit

PAGES_SITE_LIMIT = 1_000_000_000  # GitHub Pages: published site <= 1 GB
PAGES_FILE_LIMIT = 100_000_000  # GitHub: files <= 100 MB
DEFAULT_BUDGET = 900_000_000
#: bytes we expect besides media: theme, pages, search index, per-unit JSON
FIXED_RESERVE = 8_000_000
PER_UNIT_RESERVE = 2_000
#: drop order when over budget: (role, applies to logit units?, words the site uses to explain it).
#: Channel videos go before class-logit videos: the 1,000 classes are what most visitors open.
TIERS: tuple[tuple[str, bool | None, str], ...] = (
    ("diversity", None, "diversity images"),
    ("mp4", False, "optimisation videos (MP4) and hover previews of layer channels"),
    ("mp4", True, "optimisation videos (MP4) and hover previews of class logits"),
)
UNIT_JSON = "unit.json"


@dataclass(frozen=True)
class UnitAssets:
    """Site paths (relative to the site root) of what one published unit shows; `mp4` (None when the store
    has none or the budget left it out) is the lightbox video and the grid cell's hover preview."""

    folder: str
    thumb: str
    image: str
    meta: str
    mp4: str | None = None
    diversity: tuple[str, ...] = ()


@dataclass
class MediaPlan:
    """Site path -> source file, plus per-unit asset paths and what the budget forced out."""

    links: dict[str, Path] = field(default_factory=dict)
    units: dict[str, UnitAssets] = field(default_factory=dict)  # by Unit.path
    filters: dict[str, str] = field(default_factory=dict)  # model -> site path
    dropped: list[str] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)
    bytes: int = 0
    budget: int = DEFAULT_BUDGET

    def assets(self, unit: Unit) -> UnitAssets | None:
        return self.units.get(unit.path)


def _in_tier(unit: Unit, logits: bool | None) -> bool:
    return logits is None or (unit.kind == "logit") == logits


def _tier_bytes(units: list[Unit], role: str, logits: bool | None) -> int:
    chosen = [u for u in units if _in_tier(u, logits)]
    if role == "diversity":
        return sum(f.size for u in chosen for f in u.diversity)
    return sum(u.files[role].size for u in chosen if role in u.files)


def plan_media(atlas: Atlas, budget: int = DEFAULT_BUDGET) -> MediaPlan:
    """Choose the files to publish for every published unit of the atlas."""
    plan = MediaPlan(budget=budget)
    units = _publishable(atlas, plan)
    dropped = _drop_tiers(atlas, units, plan)
    for unit in units:
        plan.units[unit.path] = _assets(unit, dropped, plan)
    for model in atlas.models:
        if model.filters:
            plan.filters[model.name] = layout.media_path(model.filters.rel)
            plan.links[plan.filters[model.name]] = model.filters.path
    plan.bytes = sum(p.stat().st_size for p in plan.links.values())
    return plan


def _publishable(atlas: Atlas, plan: MediaPlan) -> list[Unit]:
    """The published units; one whose thumbnail or image is over GitHub's per-file limit cannot be
    published at all and is marked corrupt."""
    for unit in atlas.units:
        if not unit.published:
            continue
        big = [f for r, f in unit.files.items() if r in ("thumb", "image_web") and f.size > PAGES_FILE_LIMIT]
        if big:
            unit.state, unit.reason = "corrupt", f"{big[0].rel} is over GitHub's 100 MB file limit"
            plan.too_large.append(big[0].rel)
    return [u for u in atlas.units if u.published]


def _drop_tiers(atlas: Atlas, units: list[Unit], plan: MediaPlan) -> list[tuple[str, bool | None]]:
    """The optional tiers (role, logits or not) left out, cheapest loss first, until the site fits."""
    required = sum(u.files["thumb"].size + u.files["image_web"].size for u in units)
    required += sum(m.filters.size for m in atlas.models if m.filters)
    optional = [_tier_bytes(units, role, logits) for role, logits, _ in TIERS]
    total = required + FIXED_RESERVE + PER_UNIT_RESERVE * len(units) + sum(optional)
    dropped: list[tuple[str, bool | None]] = []
    for (role, logits, words), size in zip(TIERS, optional):
        if total <= plan.budget:
            break
        if size:
            dropped.append((role, logits))
            total -= size
            plan.dropped.append(words)
    return dropped


def _assets(unit: Unit, dropped: list[tuple[str, bool | None]], plan: MediaPlan) -> UnitAssets:
    """A unit's published files (site paths), each linked into the plan."""

    def keep(role: str) -> bool:
        return not any(r == role and _in_tier(unit, lg) for r, lg in dropped)

    def link(f) -> str:
        plan.links[layout.media_path(f.rel)] = f.path
        return layout.media_path(f.rel)

    thumb, image = link(unit.files["thumb"]), link(unit.files["image_web"])
    mp4, video = None, unit.files.get("mp4")
    if video is not None and keep("mp4"):
        if video.size > PAGES_FILE_LIMIT:
            plan.too_large.append(video.rel)
        else:
            mp4 = link(video)
    diversity = [link(f) for f in unit.diversity if f.size <= PAGES_FILE_LIMIT] if keep("diversity") else []
    folder = layout.media_path(unit.path.rstrip("/"))
    return UnitAssets(folder=folder, thumb=thumb, image=image, meta=f"{folder}/{UNIT_JSON}",
                      mp4=mp4, diversity=tuple(diversity))
