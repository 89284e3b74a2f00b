"""Render settings from every entry point, through one schema.

`overrides:` in flows.yaml and `--set FIELD=VALUE` / `--steps` / `--size` on `featvis render` are the same thing:
changes to a preset's `featvis_core.RenderConfig`. Both go through `RenderSettings` (types, names, the allowed
words) and then through RenderConfig's own range checks, so a value is accepted or refused the same way
wherever it comes from, with one line that names where it came from and the field, in user words
("--set steps: must be a whole number, got 'abc'"). A test keeps the schema's fields equal to RenderConfig's.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from featvis_core import FeatvisError, RenderConfig, preset
from featvis_core.schedules import NAMED

from .storeformat import explain

Finite = Annotated[float, Field(allow_inf_nan=False)]
Pair = Annotated[list[Finite], Field(min_length=2, max_length=2)]


class Settings(BaseModel):
    """Strict: no coercion ('3' is not 3, true is not 1), no unknown names."""

    model_config = ConfigDict(strict=True, extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _tuples_as_lists(cls, value: Any) -> Any:
        return list(value) if isinstance(value, tuple) else value

    #: fields where null means something (no crop, no output resampling); elsewhere null is refused
    nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _null_only_where_it_means_something(self) -> "Settings":
        for name in self.model_fields_set - self.nullable:
            if getattr(self, name) is None:
                raise ValueError(f"{name}: must not be null")
        return self

    def changes(self) -> dict[str, Any]:
        """Only the fields that were given, nested settings as plain mappings."""
        return self.model_dump(exclude_unset=True)


class AugmentSettings(Settings):
    nullable = frozenset({"output", "crop"})
    pad: int | None = None
    jitter: int | None = None
    scale: Pair | None = None
    rotate: Finite | None = None
    jitter_after: int | None = None
    brightness: Finite | None = None
    contrast: Finite | None = None
    saturation: Finite | None = None
    hue: Finite | None = None
    fill: Finite | None = None
    output: int | None = None
    copies: int | None = None
    zoom: Finite | None = None
    crop: int | None = None


class UpscaleSettings(Settings):
    nullable = frozenset({"stages", "until"})
    start: int
    every: int
    factor: Finite = 1.0
    stages: int | None = None
    until: int | None = None
    blur: Finite = 0.0


def _schedule_form(value: Any) -> str | None:
    return "(name)" if isinstance(value, str) else "(mapping)" if isinstance(value, (dict, BaseModel)) else None


Schedule = Annotated[
    Union[Annotated[Literal[tuple(NAMED)], Tag("(name)")], Annotated[UpscaleSettings, Tag("(mapping)")]],  # type: ignore[valid-type]
    Discriminator(_schedule_form, custom_error_type="schedule",
                  custom_error_message=f"must be a schedule name ({', '.join(NAMED)}) or a mapping"),
]


class RenderSettings(Settings):
    """Every field of RenderConfig, optional: what a preset's settings are changed to."""

    nullable = frozenset({"crop", "crop_scale"})

    param: Literal["pixel", "fft", "maco"] | None = None
    decorrelate: bool | None = None
    decay: Finite | None = None
    schedule: Schedule | None = None
    size: int | None = None
    steps: int | None = None
    optimizer: Literal["adam", "sgd", "nadam"] | None = None
    lr: Finite | None = None
    augment: AugmentSettings | None = None
    l1: Finite | None = None
    l1_centre: Finite | None = None
    l2: Finite | None = None
    tv: Finite | None = None
    blur_every: int | None = None
    blur_sigma: Finite | None = None
    input_blur: Finite | None = None
    best: bool | None = None
    diversity: int | None = None
    diversity_weight: Finite | None = None
    frames: int | None = None
    animation_size: int | None = None
    crop: int | None = None
    crop_share: Finite | None = None
    crop_scale: Pair | None = None
    early_stop: int | None = None
    precision: Literal["auto", "fp32", "bf16"] | None = None
    seed: int | None = None


def check_settings(values: Any, where: str) -> dict[str, Any]:
    """Validate render setting changes; FeatvisError naming `where` and the field otherwise."""
    if not isinstance(values, dict):
        raise FeatvisError(f"{where}: must be a mapping of render settings, got {type(values).__name__}")
    try:
        return RenderSettings.model_validate(values).changes()
    except ValidationError as error:
        first = error.errors()[0]
        if first["type"] == "value_error":  # a null where a value is needed
            loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith("("))
            message = first["msg"].removeprefix("Value error, ")
            raise FeatvisError(f"{where}.{loc + '.' if loc else ''}{message}" if not where.startswith("--")
                               else f"{where} {loc + '.' if loc else ''}{message}") from None
        if first["type"] == "extra_forbidden":
            unknown = sorted({".".join(map(str, e["loc"])) for e in error.errors() if e["type"] == "extra_forbidden"})
            raise FeatvisError(f"{where}: unknown render setting(s): {', '.join(unknown)}") from None
        raise FeatvisError(f"{where}.{explain(error)}" if not where.startswith("--") else
                           f"{where} {explain(error)}") from None


def render_config(preset_name: str, changes: dict[str, Any], where: str, **fixed: Any) -> RenderConfig:
    """A preset with checked changes (and `fixed` fields set by the caller, e.g. a job's diversity)."""
    checked = check_settings(changes, where)
    try:
        return preset(preset_name, **checked, **fixed)
    except FeatvisError as error:
        if str(error).startswith("unknown preset"):
            raise
        raise FeatvisError(f"{where}: {error}") from None


def schema_fields() -> tuple[set[str], set[str]]:
    """(RenderSettings' fields, RenderConfig's fields): a test keeps them equal."""
    return set(RenderSettings.model_fields), {f.name for f in dataclasses.fields(RenderConfig)}
