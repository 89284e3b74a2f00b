"""Units: the things an atlas renders, the small language that names them, and the table of their kinds.

A unit is a channel, a neuron, a negative channel, a direction (a weighted sum of channels), a whole
layer (DeepDream) or a class logit. On the command line and in flows.yaml a *selector* names many at once::

    blocks.10:0-7          channels 0..7 of blocks.10
    blocks.10:all          every channel
    blocks.10:!3           the negative of channel 3 (what it responds to least)
    blocks.10:3@           channel 3's centre neuron; blocks.10:3@5/2 the neuron at x=5, y=2
    blocks.10:3-0.5*7      a direction: channel 3 minus half of channel 7 (any terms joined by + or -)
    blocks.10:dream        the whole layer (DeepDream objective)
    logits:hen,pelican,8   class logits by name or index; logits:all for every class
    encoder.layers.encoder_layer_7:3@cls   feature 3 of a ViT block's class token

On token layers (a ViT block's `[batch, tokens, dim]`) a channel is one feature dimension averaged over
the patch tokens (the class token is not part of the mean), a neuron `3@X/Y` is that feature at one patch
of the token grid, and `3@cls` is that feature of the class token, an objective of its own. On
channels-last layers (Swin) channels are the last axis. probe.py finds each layer's layout.

Everything that differs between kinds (selector syntax, canonical item, store slug, label, caption and
the vectorised scorer) is one row of `KINDS`: a new kind is one `KindRow`. From Python, channel-like
units add and scale without side effects, as Lucid's objectives do::

    channel("blocks.10", 3) - 0.5 * channel("blocks.10", 7)   # a direction unit
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from .errors import FeatvisError

if TYPE_CHECKING:
    import torch

    from .objectives import Targets

LOGITS = "logits"
ClassIndex = Callable[[str], int]


class Kind(str, Enum):
    CHANNEL = "channel"
    NEURON = "neuron"
    NEGATIVE = "negative"
    DIRECTION = "direction"
    LAYER = "layer"
    LOGIT = "logit"
    TOKEN = "token"  # one feature of a ViT block's class token


@dataclass(frozen=True, order=True)
class Unit:
    """One renderable unit. `index` is the channel or class; `x`, `y` a neuron's position (None: centre);
    `terms` a direction's (channel, weight) pairs."""

    layer: str
    kind: Kind
    index: int | None = None
    x: int | None = None
    y: int | None = None
    terms: tuple[tuple[int, float], ...] = ()

    @property
    def row(self) -> "KindRow":
        return KINDS[self.kind]

    @property
    def spec(self) -> str:
        """Canonical selector of exactly this unit (round-trips through `unit_from_spec`)."""
        return f"{self.layer}:{self.row.item(self)}"

    @property
    def slug(self) -> str:
        """Folder name of the unit in the store (see pipeline/STORE.md)."""
        return self.row.slug(self)

    def __str__(self) -> str:
        return self.spec

    # -- objective arithmetic: channel-like units of one layer combine into directions ---------------
    def weights(self) -> dict[int, float]:
        if self.kind not in (Kind.CHANNEL, Kind.NEGATIVE, Kind.DIRECTION):
            raise FeatvisError(f"{self.spec}: only channels, negative channels and directions combine")
        if self.kind is Kind.DIRECTION:
            return dict(self.terms)
        return {self.index: -1.0 if self.kind is Kind.NEGATIVE else 1.0}

    def __add__(self, other: "Unit") -> "Unit":
        if not isinstance(other, Unit):
            return NotImplemented
        if other.layer != self.layer:
            raise FeatvisError(f"cannot combine units of two layers: {self.spec} and {other.spec}")
        combined = self.weights()
        for channel, weight in other.weights().items():
            combined[channel] = combined.get(channel, 0.0) + weight
        return direction(self.layer, combined)

    def __mul__(self, factor: float) -> "Unit":
        if not isinstance(factor, (int, float)):
            return NotImplemented
        return direction(self.layer, {c: w * factor for c, w in self.weights().items()})

    __rmul__ = __mul__

    def __neg__(self) -> "Unit":
        return self * -1.0

    def __sub__(self, other: "Unit") -> "Unit":
        return self + (-other) if isinstance(other, Unit) else NotImplemented


def channel(layer: str, index: int) -> Unit:
    return Unit(layer, Kind.CHANNEL, index)


def direction(layer: str, weights: dict[int, float]) -> Unit:
    """The unit for a weighted sum of channels, in its simplest kind: one channel with weight 1 is that
    channel, with weight -1 its negative. Weights keep 6 significant digits, so specs round-trip."""
    terms = tuple((c, float(f"{w:.6g}")) for c, w in sorted(weights.items()) if float(f"{w:.6g}") != 0.0)
    if not terms:
        raise FeatvisError(f"direction in {layer} has no channel with a non-zero weight")
    if len(terms) == 1 and terms[0][1] in (1.0, -1.0):
        return Unit(layer, Kind.CHANNEL if terms[0][1] == 1.0 else Kind.NEGATIVE, terms[0][0])
    return Unit(layer, Kind.DIRECTION, terms=terms)


# -- selector items ---------------------------------------------------------------------------------------
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
_NEURON = re.compile(r"^(\d+)@(?:(\d+)/(\d+))?$")
_TERM = re.compile(r"\s*([+-]?)\s*(?:(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)\s*\*\s*)?(\d+)\s*")


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


def _parse_direction(layer: str, item: str, count: int) -> Unit:
    weights: dict[int, float] = {}
    position = 0
    while position < len(item):
        match = _TERM.match(item, position)
        if not match or match.end() == position or (position and not match[1]):
            raise FeatvisError(f"bad direction {item!r}: expected terms like 3-0.5*7+2*9")
        [index] = _indices(match[3], count, "channel")
        weight = float(match[2]) if match[2] else 1.0
        weights[index] = weights.get(index, 0.0) + (-weight if match[1] == "-" else weight)
        position = match.end()
    return direction(layer, weights)


def _parse_neuron(layer: str, item: str, count: int, _classes: ClassIndex | None = None) -> list[Unit]:
    match = _NEURON.match(item)
    if not match:
        raise FeatvisError(f"bad neuron {item!r}: expected C@ (centre) or C@X/Y")
    [index] = _indices(match[1], count, "channel")
    x, y = (int(match[2]), int(match[3])) if match[2] else (None, None)
    return [Unit(layer, Kind.NEURON, index, x, y)]


def _parse_token(layer: str, item: str, count: int, _classes: ClassIndex | None = None) -> list[Unit]:
    return [Unit(layer, Kind.TOKEN, i) for i in _indices(item[:-len("@cls")], count, "channel")]


def _parse_logit(item: str, count: int, class_index: ClassIndex | None) -> list[Unit]:
    if item == "all" or _RANGE.match(item):
        return [Unit(LOGITS, Kind.LOGIT, i) for i in _indices(item, count, "class")]
    if class_index is None:
        raise FeatvisError(f"class names need a model: {item!r}")
    return [Unit(LOGITS, Kind.LOGIT, class_index(item))]


def _direction_item(unit: Unit) -> str:
    text = "".join(f"{'-' if w < 0 else '+'}{'' if abs(w) == 1 else f'{abs(w):g}*'}{c}" for c, w in unit.terms)
    return text[1:] if text.startswith("+") else text


def _direction_caption(unit: Unit) -> str:
    text = "".join(f" {'−' if w < 0 else '+'} {'' if abs(w) == 1 else f'{abs(w):g}·'}{c}" for c, w in unit.terms)
    return text[3:] if text.startswith(" + ") else "−" + text[3:]


# -- scorers: (activation, targets) -> one score per image, vectorised over the batch --------------------
def _rows(activation: "torch.Tensor"):
    import torch

    return torch.arange(activation.shape[0], device=activation.device)


def _spatial(activation: "torch.Tensor") -> "torch.Tensor":
    if activation.ndim != 4:
        raise ValueError(f"cannot score a channel of an activation of shape {tuple(activation.shape)}")
    return activation


def _channel_mean(activation: "torch.Tensor", targets: "Targets") -> "torch.Tensor":
    return _spatial(activation).mean(dim=(2, 3))[_rows(activation), targets.index]


def _neuron(activation: "torch.Tensor", targets: "Targets") -> "torch.Tensor":
    import torch

    _, _, height, width = _spatial(activation).shape
    ys = torch.where(targets.y < 0, height // 2, targets.y.clamp(max=height - 1))
    xs = torch.where(targets.x < 0, width // 2, targets.x.clamp(max=width - 1))
    return activation[_rows(activation), targets.index, ys, xs]


def _direction_score(activation: "torch.Tensor", targets: "Targets") -> "torch.Tensor":
    means = _spatial(activation).mean(dim=(2, 3))
    return (means.gather(1, targets.term_index) * targets.term_weight).sum(1)


def _logit(activation: "torch.Tensor", targets: "Targets") -> "torch.Tensor":
    if activation.ndim != 2:
        raise ValueError(f"cannot score a logit of an activation of shape {tuple(activation.shape)}")
    return activation[_rows(activation), targets.index]


@dataclass(frozen=True)
class KindRow:
    """One objective kind: how a selector item names it, how it is written back, its store folder name,
    how people read it, and its score."""

    matches: Callable[[str, str], bool]  # (layer, item) -> is this item of this kind?
    parse: Callable[[str, str, int, ClassIndex | None], list[Unit]]  # (layer, item, count, class_index)
    item: Callable[[Unit], str]  # canonical selector item
    slug: Callable[[Unit], str]
    label: Callable[[Unit, Sequence[str] | None], str]  # long name: titles, alt text
    caption: Callable[[Unit, Sequence[str] | None], str]  # short name under a thumbnail
    score: Callable[["torch.Tensor", "Targets"], "torch.Tensor"]
    reads: str = "map"  # what `score` is given: the layer as [B, C, H, W] ("map"), the class token [B, D]
    # ("token") or the logits [B, K] ("logits"); see probe.Layout


def _neuron_where(unit: Unit) -> str:
    return "" if unit.x is None else f"{unit.x}/{unit.y}"


def _class_name(unit: Unit, classes: Sequence[str] | None) -> str:
    return classes[unit.index] if classes and 0 <= unit.index < len(classes) else f"class {unit.index}"


# Order matters for `matches`: the first row that claims an item parses it.
KINDS: dict[Kind, KindRow] = {
    Kind.LOGIT: KindRow(
        matches=lambda layer, item: layer == LOGITS,
        parse=lambda layer, item, count, classes: _parse_logit(item, count, classes),
        item=lambda u: str(u.index), slug=lambda u: f"k{u.index:04d}",
        label=_class_name, caption=_class_name, score=_logit, reads="logits"),
    Kind.LAYER: KindRow(
        matches=lambda layer, item: item == "dream",
        parse=lambda layer, item, count, classes: [Unit(layer, Kind.LAYER)],
        item=lambda u: "dream", slug=lambda u: "dream",
        label=lambda u, c: f"{u.layer} (whole layer)", caption=lambda u, c: "whole layer",
        score=lambda activation, targets: _spatial(activation).mean(dim=(1, 2, 3))),
    Kind.NEGATIVE: KindRow(
        matches=lambda layer, item: item.startswith("!"),
        parse=lambda layer, item, count, classes: [Unit(layer, Kind.NEGATIVE, i) for i in _indices(item[1:], count, "channel")],
        item=lambda u: f"!{u.index}", slug=lambda u: f"neg{u.index:04d}",
        label=lambda u, c: f"{u.layer} negative channel {u.index}", caption=lambda u, c: f"−{u.index}",
        score=lambda activation, targets: -_channel_mean(activation, targets)),
    Kind.TOKEN: KindRow(
        matches=lambda layer, item: item.endswith("@cls"),
        parse=_parse_token,
        item=lambda u: f"{u.index}@cls", slug=lambda u: f"t{u.index:04d}",
        label=lambda u, c: f"{u.layer} class token channel {u.index}", caption=lambda u, c: f"{u.index} @ cls",
        score=lambda token, targets: token[_rows(token), targets.index], reads="token"),
    Kind.NEURON: KindRow(
        matches=lambda layer, item: "@" in item,
        parse=_parse_neuron,
        item=lambda u: f"{u.index}@{_neuron_where(u)}",
        slug=lambda u: f"n{u.index:04d}" + ("" if u.x is None else f"-x{u.x}-y{u.y}"),
        label=lambda u, c: f"{u.layer} neuron {u.index} ({'centre' if u.x is None else f'x={u.x}, y={u.y}'})",
        caption=lambda u, c: f"{u.index} @ {'centre' if u.x is None else f'{u.x},{u.y}'}",
        score=_neuron),
    Kind.DIRECTION: KindRow(
        matches=lambda layer, item: "*" in item or "+" in item,
        parse=lambda layer, item, count, classes: [_parse_direction(layer, item, count)],
        item=_direction_item, slug=lambda u: "d" + hashlib.sha256(_direction_item(u).encode()).hexdigest()[:12],
        label=lambda u, c: f"{u.layer} direction {_direction_caption(u)}", caption=lambda u, c: _direction_caption(u),
        score=_direction_score),
    Kind.CHANNEL: KindRow(
        matches=lambda layer, item: True,
        parse=lambda layer, item, count, classes: [Unit(layer, Kind.CHANNEL, i) for i in _indices(item, count, "channel")],
        item=lambda u: str(u.index), slug=lambda u: f"c{u.index:04d}",
        label=lambda u, c: f"{u.layer} channel {u.index}", caption=lambda u, c: str(u.index),
        score=_channel_mean),
}


def parse_selector(selector: str, channels: int, class_index: ClassIndex | None = None) -> list[Unit]:
    """Units named by one selector such as ``blocks.10:0-3,!5`` for a layer with `channels` channels.
    `class_index` maps a class name to its index (needed for ``logits:hen``)."""
    layer, sep, items = selector.strip().rpartition(":")
    if not sep or not layer or not items:
        raise FeatvisError(f"bad unit selector {selector!r}: expected LAYER:CHANNELS, e.g. blocks.10:0-7")
    units: list[Unit] = []
    for item in (t.strip() for t in items.split(",")):
        if not item:
            raise FeatvisError(f"bad unit selector {selector!r}: empty item")
        row = next(row for row in KINDS.values() if row.matches(layer, item))
        units += row.parse(layer, item, channels, class_index)
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
    return unit.row.label(unit, classes)


def caption(unit: Unit, classes: Sequence[str] | None = None) -> str:
    """Short name under a thumbnail: '3', '−3', '3 @ centre', 'whole layer', '3 − 0.5·7', a class name."""
    return unit.row.caption(unit, classes)
