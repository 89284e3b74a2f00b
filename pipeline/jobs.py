"""flows.yaml: named render jobs, validated with pydantic into one-line errors.

```yaml
defaults:              # shared by every job (a job's own fields win, mappings merge)
  store: store
  preset: coarse-to-fine
jobs:
  demo:
    model: efficientnet_lite0
    layers: {blocks.4: 0-7, "blocks.1*": [0, 3, 5-7]}   # names or globs -> channels
    logits: [hen, pelican, 8, 10-20]                    # or all
    overrides: {steps: 96}
    runner: {kind: threads, workers: 2}
    cron: "0 3 * * 6"
```
Everything that needs the model itself (does the layer exist, is channel 900 in range, is "hen" a
class) is checked by the planner, still before any rendering.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from featvis_core import DEFAULT_PRESET, FeatvisError, preset
from featvis_core.models import check_model_name

from .extras_spec import ExamplesSpec, ZoomSpec

Channels = Union[Literal["all"], int, str, list[Union[int, str]]]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunnerSpec(Strict):
    """Where tiles run: threads in this process (one per GPU, or `workers` on CPU), a Dask cluster
    (`address` of a running scheduler, a local CUDA cluster with `cuda: true`, else a local cluster of
    `workers` processes), or Ray (`address`, or a local Ray)."""

    kind: Literal["threads", "dask", "ray"] = "threads"
    workers: int | None = Field(None, ge=1, le=256)
    address: str | None = None
    cuda: bool = False


class JobSpec(Strict):
    """One named render job."""

    model: str
    layers: dict[str, Channels] | list[str] = Field(default_factory=dict)
    logits: Channels | None = None
    preset: str = DEFAULT_PRESET
    overrides: dict[str, Any] = Field(default_factory=dict)
    diversity: int = Field(1, ge=1, le=16)
    batch: int = Field(16, ge=1, le=4096)
    runner: RunnerSpec = Field(default_factory=RunnerSpec)
    cron: str | None = None
    store: Path = Path("store")
    scores: bool = True
    retries: int = Field(2, ge=0, le=20)
    site: Path | None = None  # build the gallery here after the run
    examples: ExamplesSpec | None = None  # real images beside synthetic ones (pipeline/extras.py)
    zoom: ZoomSpec | None = None  # eternal-zoom dives of class logits
    description: str = ""

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        check_model_name(name)
        return name

    @field_validator("layers")
    @classmethod
    def _as_mapping(cls, layers):
        return {name: "all" for name in layers} if isinstance(layers, list) else layers

    @field_validator("cron")
    @classmethod
    def _cron_parses(cls, cron: str | None) -> str | None:
        if cron is not None:
            from cronsim import CronSim, CronSimError
            from datetime import datetime

            try:
                CronSim(cron, datetime(2026, 1, 1))
            except CronSimError as error:
                raise ValueError(f"cron {cron!r} does not parse: {error}") from None
            except Exception:  # noqa: BLE001 - cronsim lets some malformed fields through as other errors
                raise ValueError(f"cron {cron!r} does not parse") from None
        return cron

    @field_validator("store")
    @classmethod
    def _store_is_a_folder(cls, store: Path) -> Path:
        if store.exists() and not store.is_dir():
            raise ValueError(f"store {str(store)!r} is a file, not a folder")
        for parent in store.absolute().parents:
            if parent.exists():
                if not parent.is_dir():
                    raise ValueError(f"store {str(store)!r} cannot be created: {str(parent)!r} is a file")
                break
        return store

    @field_validator("overrides")
    @classmethod
    def _override_types(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        from featvis_core import RenderConfig

        _check_fields("overrides", overrides, RenderConfig)
        if "diversity" in overrides:
            raise ValueError("diversity is a job field (diversity: N), not an override")
        return overrides

    @model_validator(mode="after")
    def _render_settings_are_valid(self) -> "JobSpec":
        if not self.layers and self.logits is None:
            raise ValueError("a job needs layers, logits or both")
        self.render_config()  # raises FeatvisError (a ValueError) on a bad preset or override
        return self

    def render_config(self):
        """The effective render config: the preset with the job's overrides and diversity."""
        try:
            return preset(self.preset, **self.overrides, diversity=self.diversity)
        except FeatvisError:
            raise
        except Exception as error:  # noqa: BLE001 - a setting the config cannot take is the user's to fix
            raise FeatvisError(f"overrides: {type(error).__name__}: {error}") from None


_CHECKS = {
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "float": ("a finite number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "str": ("a string", lambda v: isinstance(v, str)),
    "int | None": ("an integer or null", lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool))),
    "tuple[float, float]": ("two finite numbers", lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)),
}


def _check_fields(where: str, values: dict[str, Any], kind: type) -> None:
    """Check the types of `values` against the dataclass `kind` (render settings, augment, schedule), so a
    wrong type is a readable error here, not an exception deep inside the renderer. Unknown names are
    left to the config, which lists them."""
    from featvis_core.schedules import Upscale
    from featvis_core.transforms import Augment

    nested = {"Augment": Augment, "str | Upscale": Upscale}
    for field in dataclasses.fields(kind):
        if field.name not in values:
            continue
        value, annotation = values[field.name], str(field.type)
        if annotation in nested:
            if isinstance(value, dict):
                inner = nested[annotation]
                unknown = sorted(map(str, set(value) - {f.name for f in dataclasses.fields(inner)}))
                if unknown:
                    raise ValueError(f"{where}.{field.name}: unknown setting(s): {', '.join(unknown)}")
                _check_fields(f"{where}.{field.name}", value, inner)
                continue
            if annotation == "str | Upscale" and isinstance(value, str):
                continue
            raise ValueError(f"{where}.{field.name} must be {'a name or ' if 'str' in annotation else ''}a mapping, "
                             f"got {_short(value)}")
        expected, ok = _CHECKS.get(annotation, ("", lambda v: True))
        if not ok(value):
            raise ValueError(f"{where}.{field.name} must be {expected}, got {_short(value)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def one_line(text: str) -> str:
    """A message as one printable line: line breaks and other control characters escaped."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class FlowsFile(Strict):
    defaults: dict[str, Any] = Field(default_factory=dict)
    jobs: dict[str, Any]


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def _explain(error: ValidationError) -> str:
    """The first problem of a pydantic error as 'field: what was expected'."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "job"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    elif first["type"] == "missing":
        message = "required field is missing"
    return one_line(f"{where}: {message}")


def load_jobs(path: Path | str) -> dict[str, JobSpec]:
    """Every job of a flows.yaml, validated; a FeatvisError names the file, job and field at fault."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FeatvisError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise FeatvisError(f"{path}: is a folder, not a flows.yaml") from None
    except UnicodeDecodeError as error:
        raise FeatvisError(f"{path}: is not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise FeatvisError(f"{path}: cannot be read ({error.strerror or error})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).strip().splitlines()[0]
        raise FeatvisError(one_line(f"{path}:{where} is not valid YAML ({problem})")) from None
    except RecursionError:
        raise FeatvisError(f"{path}: is nested too deeply") from None
    if not isinstance(raw, dict):
        raise FeatvisError(one_line(f"{path}: expected a mapping with a 'jobs' key, got {type(raw).__name__}"))
    try:
        flows = FlowsFile.model_validate(raw)
    except ValidationError as error:
        raise FeatvisError(f"{path}: {_explain(error)}") from None
    jobs = {}
    for name, fields in flows.jobs.items():
        if not JOB_NAME.fullmatch(name):
            raise FeatvisError(one_line(f"{path}: job {name!r}: a job name is letters, digits, '_', '.' and '-', "
                                        "starting with a letter or digit"))
        if not isinstance(fields, dict):
            raise FeatvisError(f"{path}: job {name!r}: expected a mapping of fields, got {type(fields).__name__}")
        try:
            jobs[name] = JobSpec.model_validate(_merge(flows.defaults, fields))
        except ValidationError as error:
            raise FeatvisError(one_line(f"{path}: job {name!r}: {_explain(error)}")) from None
        except FeatvisError as error:
            raise FeatvisError(one_line(f"{path}: job {name!r}: {error}")) from None
    return jobs


def load_job(path: Path | str, name: str) -> JobSpec:
    jobs = load_jobs(path)
    if name not in jobs:
        raise FeatvisError(f"{path}: no job {name!r}; jobs: {', '.join(jobs) or 'none'}")
    return jobs[name]

