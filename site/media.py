"""Decide which store files the site publishes, under GitHub Pages' size limits.

Files are published as-is (no re-encoding): the store's WebP thumbs/previews and H.264 videos are already
web formats. When the total would exceed the budget (default 900 MB, under Pages' 1 GB), optional media are
dropped tier by tier (diversity images, then MP4s, then hover animations) rather than failing the build,
and the home page says what was left out. Thumbnails and images are never dropped.
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
    ("mp4", False, "optimisation videos (MP4) of layer channels"),
    ("mp4", True, "optimisation videos (MP4) of class logits"),
    ("anim_webp", None, "hover animations"),
)
UNIT_JSON = "unit.json"


@dataclass(frozen=True)
class UnitAssets:
    """Site paths (relative to the site root) of what one published unit shows."""

    folder: str
    thumb: str
    image: str
    meta: str
    anim: str | None = None
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
    units = [u for u in atlas.units if u.published]
    for unit in units:  # a required file over GitHub's per-file limit cannot be published at all
        big = [f for r, f in unit.files.items() if r in ("thumb", "image_web") and f.size > PAGES_FILE_LIMIT]
        if big:
            unit.state, unit.reason = "corrupt", f"{big[0].rel} is over GitHub's 100 MB file limit"
            plan.too_large.append(big[0].rel)
    units = [u for u in units if u.published]

    required = sum(u.files["thumb"].size + u.files["image_web"].size for u in units)
    required += sum(m.filters.size for m in atlas.models if m.filters)
    optional = [_tier_bytes(units, role, logits) for role, logits, _ in TIERS]
    reserve = FIXED_RESERVE + PER_UNIT_RESERVE * len(units)
    dropped: list[tuple[str, bool | None]] = []
    total = required + reserve + sum(optional)
    for (role, logits, words), size in zip(TIERS, optional):
        if total <= budget:
            break
        if size:
            dropped.append((role, logits))
            total -= size
            plan.dropped.append(words)

    def keep(unit: Unit, role: str) -> bool:
        return not any(r == role and _in_tier(unit, lg) for r, lg in dropped)

    for unit in units:
        folder = layout.media_path(unit.path.rstrip("/"))
        thumb, image = unit.files["thumb"], unit.files["image_web"]
        plan.links[layout.media_path(thumb.rel)] = thumb.path
        plan.links[layout.media_path(image.rel)] = image.path
        extra: dict[str, str | None] = {"anim_webp": None, "mp4": None}
        for role in ("anim_webp", "mp4"):
            f = unit.files.get(role)
            if f is None or not keep(unit, role):
                continue
            if f.size > PAGES_FILE_LIMIT:
                plan.too_large.append(f.rel)
                continue
            extra[role] = layout.media_path(f.rel)
            plan.links[extra[role]] = f.path
        diversity: list[str] = []
        if keep(unit, "diversity"):
            for f in unit.diversity:
                if f.size <= PAGES_FILE_LIMIT:
                    diversity.append(layout.media_path(f.rel))
                    plan.links[diversity[-1]] = f.path
        plan.units[unit.path] = UnitAssets(
            folder=folder,
            thumb=layout.media_path(thumb.rel),
            image=layout.media_path(image.rel),
            meta=f"{folder}/{UNIT_JSON}",
            anim=extra["anim_webp"],
            mp4=extra["mp4"],
            diversity=tuple(diversity),
        )
    for model in atlas.models:
        if model.filters:
            plan.filters[model.name] = layout.media_path(model.filters.rel)
            plan.links[plan.filters[model.name]] = model.filters.path
    plan.bytes = sum(p.stat().st_size for p in plan.links.values())
    return plan
