"""The gallery's view of a store: dataclasses for models, layers, units and their verified files.

Pure data, no I/O: store_reader.py builds them (verify.py checks each unit), pages and media read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOGITS = "logits"


@dataclass(frozen=True)
class StoredFile:
    """One verified file of a unit, as the site will publish it."""

    role: str
    path: Path  # absolute path in the store
    rel: str  # posix path relative to the store root
    size: int
    sha256: str


@dataclass(frozen=True)
class Activation:
    """Activation reached by the optimisation; ``history`` is downsampled to HISTORY_POINTS."""

    start: float | None
    final: float | None
    best: float | None
    steps: int
    history: tuple[float | None, ...]


@dataclass
class Unit:
    """One unit of one manifest, with its verification outcome."""

    model: str
    layer: str
    unit: str
    kind: str
    index: int | None
    label: str
    key: str
    path: str
    job: str
    updated: str
    state: str  # done | pending | failed | corrupt
    reason: str | None = None  # why it is not published
    files: dict[str, StoredFile] = field(default_factory=dict)
    diversity: tuple[StoredFile, ...] = ()
    activation: Activation | None = None
    scores: dict[str, float] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    caption: str = ""  # the pipeline's short name for the unit (its kind's, featvis_core.units.KINDS)
    size: tuple[int, int] | None = None
    created: str | None = None

    @property
    def published(self) -> bool:
        return self.state == "done"

    @property
    def key12(self) -> str:
        return self.key[:12]

    @property
    def folder(self) -> str:
        """The unit folder name, ``<slug>@<key12>``."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def sort_key(self) -> tuple[int, int, str]:
        kinds = {"channel": 0, "neuron": 1, "token": 1, "negative": 2, "layer": 3, "logit": 0}
        return (kinds.get(self.kind, 9), self.index if self.index is not None else -1, self.unit)


@dataclass(frozen=True)
class LayerSpec:
    """A layer as model.json describes it (``channels`` None when model.json does not know it)."""

    name: str
    channels: int | None = None
    height: int | None = None
    width: int | None = None


@dataclass(frozen=True)
class Job:
    """One manifest: which job rendered what, with which settings."""

    name: str
    model: str
    preset: str | None
    settings: dict[str, Any]
    updated: str
    counts: dict[str, int]
    source: Path


@dataclass
class Layer:
    """A layer that has at least one unit in a manifest."""

    spec: LayerSpec
    units: list[Unit]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def is_logits(self) -> bool:
        return self.name == LOGITS

    @property
    def published(self) -> list[Unit]:
        return [u for u in self.units if u.published]


@dataclass
class Model:
    """A model of the store: its card (model.json), its jobs and its layers with units."""

    name: str
    card: dict[str, Any]
    all_layers: list[LayerSpec]
    classes: list[str]
    filters: StoredFile | None
    jobs: list[Job]
    layers: list[Layer]

    @property
    def units(self) -> list[Unit]:
        return [u for layer in self.layers for u in layer.units]

    @property
    def logits(self) -> Layer | None:
        return next((layer for layer in self.layers if layer.is_logits), None)

    @property
    def feature_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if not layer.is_logits]


@dataclass
class Atlas:
    """Everything the site shows, read from one store."""

    root: Path
    models: list[Model]
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def units(self) -> list[Unit]:
        return [u for m in self.models for u in m.units]
