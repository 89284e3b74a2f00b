"""Planning: a job becomes units with content keys, then tiles of pending units.

A unit's content key hashes everything that decides its pixels: the model and a fingerprint of its
weights, the unit, the effective render settings and the renderer version. Change any of them and the
unit is rendered anew beside the old one; change nothing and the store already has it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from featvis_core import RENDERER_VERSION, Classifier, FeatvisError, LayerInfo, RenderConfig, Unit
from featvis_core.units import LOGITS, caption, label, parse_selector

from .jobs import JobSpec
from .store import Store
from .storeformat import NAME, model_dir, unit_path


@dataclass(frozen=True)
class PlannedUnit:
    unit: Unit
    key: str
    path: str  # relative to the store root
    label: str
    caption: str = ""  # short name under a thumbnail (units.KINDS)

    @property
    def spec(self) -> str:
        return self.unit.spec


@dataclass(frozen=True)
class Tile:
    """A batch of units of one layer, rendered in one optimisation. Plain data: it crosses process
    boundaries (Dask, Ray) as it is."""

    job: str
    model: str
    store: str
    layer: str
    units: tuple[str, ...]
    keys: tuple[str, ...]
    paths: tuple[str, ...]
    labels: tuple[str, ...]
    settings: dict[str, Any] = field(hash=False)
    scores: bool = True
    index: int = 0

    @property
    def name(self) -> str:
        return f"{self.layer}[{self.units[0].split(':')[-1]}..{self.units[-1].split(':')[-1]}]"

    def split(self) -> tuple["Tile", "Tile"]:
        """Two halves (for a device that ran out of memory)."""
        half = len(self.units) // 2

        def part(s: slice) -> "Tile":
            return Tile(self.job, self.model, self.store, self.layer, self.units[s], self.keys[s], self.paths[s],
                        self.labels[s], self.settings, self.scores, self.index)

        return part(slice(None, half)), part(slice(half, None))


@dataclass
class Plan:
    job_name: str
    job: JobSpec
    model: Classifier
    config: RenderConfig
    units: list[PlannedUnit]

    @property
    def model_dir(self) -> str:
        return model_dir(self.job.model)

    @property
    def folders(self) -> list[str]:
        """The store folders this plan writes into: its model folder and one folder per layer."""
        return [self.model_dir, *dict.fromkeys(f"{self.model_dir}/{u.unit.layer}" for u in self.units)]

    def pending(self, store: Store, verify: bool = False) -> list[PlannedUnit]:
        return [u for u in self.units if not store.is_done(u.path, u.key, verify)]

    def tiles(self, pending: list[PlannedUnit]) -> list[Tile]:
        """Pending units grouped by layer into tiles of at most `batch` images (a unit takes
        `diversity` images)."""
        per_tile = max(1, self.job.batch // self.config.diversity)
        by_layer: dict[str, list[PlannedUnit]] = {}
        for unit in pending:
            by_layer.setdefault(unit.unit.layer, []).append(unit)
        tiles = []
        for layer, units in by_layer.items():
            for start in range(0, len(units), per_tile):
                chunk = units[start:start + per_tile]
                tiles.append(Tile(
                    self.job_name, self.job.model, str(self.job.store), layer,
                    tuple(u.spec for u in chunk), tuple(u.key for u in chunk), tuple(u.path for u in chunk),
                    tuple(u.label for u in chunk), self.config.to_dict(), self.job.scores, len(tiles),
                ))
        return tiles

    def image_steps(self, units: list[PlannedUnit]) -> int:
        return len(units) * self.config.diversity * self.config.augment.copies * self.config.total_steps


def content_key(model: str, fingerprint: str, unit: Unit, settings: dict[str, Any]) -> str:
    payload = {"model": model, "weights": fingerprint, "unit": unit.spec, "settings": settings,
               "renderer": RENDERER_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _glob(pattern: str) -> re.Pattern:
    """fnmatch where `*` stays within one dotted part: `layer*` is layer1..layer4, not layer1.0."""
    return re.compile(fnmatch.translate(pattern).replace(".*", "[^.]*"))


def match_layers(model: Classifier, pattern: str) -> list[LayerInfo]:
    """Layers named by an exact name (any depth) or a glob over the listed layers."""
    if not any(ch in pattern for ch in "*?["):
        return [model.layer(pattern)]
    regex = _glob(pattern)
    listed = model.layers(depth=pattern.count(".") + 1)
    found = [layer for layer in listed if regex.fullmatch(layer.name)]
    if not found:
        raise FeatvisError(f"layer pattern {pattern!r} matches no layer of {model.name}")
    return found


def _selector_items(channels: Any, where: str) -> str:
    items = channels if isinstance(channels, list) else [channels]
    text = ",".join(str(item).strip() for item in items)
    if ":" in text:  # would move the layer/channel split of the selector: "blocks.4" + "0:1" -> layer "blocks.4:0"
        raise FeatvisError(f"{where}: bad channels {text!r}: expected numbers, ranges like 0-7, names or 'all'")
    return text


def expand_units(model: Classifier, job: JobSpec) -> list[Unit]:
    """Every unit a job asks for, in job order, without duplicates."""
    units: list[Unit] = []
    for pattern, channels in job.layers.items():
        for layer in match_layers(model, pattern):
            units += _parse(f"{layer.name}:{_selector_items(channels, layer.name)}", layer.channels, model)
    if job.logits is not None:
        units += _parse(f"{LOGITS}:{_selector_items(job.logits, LOGITS)}", len(model.classes), model)
    return list(dict.fromkeys(units))


def _parse(selector: str, count: int, model: Classifier) -> list[Unit]:
    try:
        return parse_selector(selector, count, model.class_index)
    except FeatvisError:
        raise
    except ValueError as error:  # e.g. int('²') in a class lookup: still the user's selector at fault
        raise FeatvisError(f"bad unit selector {selector!r}: {error}") from None


def make_plan(job_name: str, job: JobSpec, model: Classifier) -> Plan:
    """Expand and key the job's units; raises FeatvisError for any unit the model does not have."""
    config = job.render_config()
    if config.final_size < model.min_size:
        raise FeatvisError(f"image size {config.final_size} px is below {model.name}'s minimum of {model.min_size} px")
    settings = config.to_dict()
    folder = model_dir(job.model)
    planned = []
    for unit in expand_units(model, job):
        if not NAME.fullmatch(unit.layer):
            raise FeatvisError(f"layer {unit.layer!r} of {model.name} cannot name a store folder (letters, digits, "
                               "'_', '.' and '-', at most 128, not starting with '.' or '-')")
        key = content_key(job.model, model.fingerprint, unit, settings)
        path = unit_path(folder, unit.layer, unit.slug, key)
        planned.append(PlannedUnit(unit, key, path, label(unit, model.classes), caption(unit, model.classes)))
    return Plan(job_name, job, model, config, planned)
