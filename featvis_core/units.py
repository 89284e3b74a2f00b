"""Units: the things an atlas renders, and the small language that names them.

A unit is a channel, a neuron, a negative channel, a whole layer (DeepDream) or a class logit. On the
command line and in flows.yaml a *selector* names many at once::

    blocks.10:0-7          channels 0..7 of blocks.10
    blocks.10:all          every channel
    blocks.10:!3           the negative of channel 3 (what it responds to least)
    blocks.10:3@           channel 3's centre neuron; blocks.10:3@5/2 the neuron at x=5, y=2
    blocks.10:dream        the whole layer (DeepDream objective)
    logits:hen,pelican,8   class logits by name or index; logits:all for the 1000
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Iterable, Sequence

from .errors import FeatvisError

LOGITS = "logits"


class Kind(str, Enum):
    CHANNEL = "channel"
    NEURON = "neuron"
    NEGATIVE = "negative"
    LAYER = "layer"
    LOGIT = "logit"


@dataclass(frozen=True, order=True)
class Unit:
    """One renderable unit. `index` is the channel or class; `x`, `y` a neuron's position (None: centre)."""

    layer: str
    kind: Kind
    index: int | None = None
    x: int | None = None
    y: int | None = None

    @property
    def spec(self) -> str:
        """Canonical selector of exactly this unit (round-trips through `parse_units`)."""
        if self.kind is Kind.LAYER:
            return f"{self.layer}:dream"
        if self.kind is Kind.NEGATIVE:
            return f"{self.layer}:!{self.index}"
        if self.kind is Kind.NEURON:
            where = "" if self.x is None else f"{self.x}/{self.y}"
            return f"{self.layer}:{self.index}@{where}"
        return f"{self.layer}:{self.index}"

    @property
    def slug(self) -> str:
        """Folder name of the unit in the store (see pipeline/STORE.md)."""
        if self.kind is Kind.LAYER:
            return "dream"
        if self.kind is Kind.NEGATIVE:
            return f"neg{self.index:04d}"
        if self.kind is Kind.NEURON:
            where = "" if self.x is None else f"-x{self.x}-y{self.y}"
            return f"n{self.index:04d}{where}"
        prefix = "k" if self.kind is Kind.LOGIT else "c"
        return f"{prefix}{self.index:04d}"

    def __str__(self) -> str:
        return self.spec


_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
_NEURON = re.compile(r"^(\d+)@(?:(\d+)/(\d+))?$")


def _indices(token: str, count: int, what: str) -> list[int]:
    """`3`, `2-5` or `all` as a list of indices below `count`."""
    if token == "all":
        return list(range(count))
    match = _RANGE.match(token)
    if not match:
        raise FeatvisError(f"bad {what} {token!r}: expected a number, a range like 0-7, or 'all'")
    first, last = int(match[1]), int(match[2] or match[1])
    if last < first:
        raise FeatvisError(f"bad {what} range {token!r}: end before start")
    if last >= count:
        raise FeatvisError(f"{what} {last} out of range: the layer has {count} ({what}s 0-{count - 1})")
    return list(range(first, last + 1))


def parse_selector(selector: str, channels: int, class_index=None) -> list[Unit]:
    """Units named by one selector such as ``blocks.10:0-3,!5`` for a layer with `channels` channels.
    `class_index` maps a class name to its index (needed for ``logits:hen``)."""
    layer, sep, items = selector.strip().rpartition(":")
    if not sep or not layer or not items:
        raise FeatvisError(f"bad unit selector {selector!r}: expected LAYER:CHANNELS, e.g. blocks.10:0-7")
    units: list[Unit] = []
    for token in (t.strip() for t in items.split(",")):
        if not token:
            raise FeatvisError(f"bad unit selector {selector!r}: empty item")
        if layer == LOGITS:
            if token == "all" or _RANGE.match(token):
                units += [Unit(LOGITS, Kind.LOGIT, i) for i in _indices(token, channels, "class")]
            elif class_index is None:
                raise FeatvisError(f"class names need a model: {token!r}")
            else:
                units.append(Unit(LOGITS, Kind.LOGIT, class_index(token)))
        elif token == "dream":
            units.append(Unit(layer, Kind.LAYER))
        elif token.startswith("!"):
            units += [Unit(layer, Kind.NEGATIVE, i) for i in _indices(token[1:], channels, "channel")]
        elif "@" in token:
            match = _NEURON.match(token)
            if not match:
                raise FeatvisError(f"bad neuron {token!r}: expected C@ (centre) or C@X/Y")
            [index] = _indices(match[1], channels, "channel")
            x, y = (int(match[2]), int(match[3])) if match[2] else (None, None)
            units.append(Unit(layer, Kind.NEURON, index, x, y))
        else:
            units += [Unit(layer, Kind.CHANNEL, i) for i in _indices(token, channels, "channel")]
    return list(dict.fromkeys(units))


def unit_from_spec(spec: str) -> Unit:
    """The unit of a canonical spec (`Unit.spec`), e.g. read back from a manifest."""
    [unit] = parse_selector(spec, channels=1 << 30)
    return unit


def group_by_layer(units: Iterable[Unit]) -> dict[str, list[Unit]]:
    """Units grouped by layer, in first-seen order: one batch may only hold one target layer."""
    groups: dict[str, list[Unit]] = {}
    for unit in units:
        groups.setdefault(unit.layer, []).append(unit)
    return groups


def label(unit: Unit, classes: Sequence[str] | None = None) -> str:
    """Human name of a unit: the class name for logits, 'blocks.10 channel 3' otherwise."""
    if unit.kind is Kind.LOGIT:
        return classes[unit.index] if classes else f"class {unit.index}"
    if unit.kind is Kind.LAYER:
        return f"{unit.layer} (whole layer)"
    if unit.kind is Kind.NEURON:
        where = "centre" if unit.x is None else f"x={unit.x}, y={unit.y}"
        return f"{unit.layer} neuron {unit.index} ({where})"
    sign = "negative " if unit.kind is Kind.NEGATIVE else ""
    return f"{unit.layer} {sign}channel {unit.index}"
