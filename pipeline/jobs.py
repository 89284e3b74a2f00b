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

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from featvis_core import DEFAULT_PRESET, FeatvisError, RenderConfig
from featvis_core.models import check_model_name

from .extras_spec import ExamplesSpec, ZoomSpec
from .settings import check_settings, render_config
from . import yamlfile
from .storeformat import explain
from .terminal import printable, short



def _channels(value: Any) -> Any:
    """Channels or classes: 'all', a number, a selector text ('0-7', 'hen') or a list of numbers and texts.
    One readable error for anything else (not pydantic's list of every union member it tried)."""
    def item(v: Any) -> bool:
        return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, str) and v.strip() != "")

    if item(value) or (isinstance(value, list) and value and len(value) <= 100_000 and all(map(item, value))):
        return value
    raise ValueError(f"must be 'all', a number, a range like 0-7, a name or a list of them, got {_short(value)}")


Channels = Annotated[Any, BeforeValidator(_channels)]
Batch = Annotated[int, Field(ge=1, le=4096, strict=True)]


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
    layers: dict[str, Channels] = Field(default_factory=dict, max_length=10_000)
    logits: Channels | None = None
    preset: str = DEFAULT_PRESET
    overrides: dict[str, Any] = Field(default_factory=dict)
    diversity: int = Field(1, ge=1, le=16, strict=True)
    batch: Batch = 16
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

    @field_validator("layers", mode="before")
    @classmethod
    def _as_mapping(cls, layers: Any) -> Any:
        if isinstance(layers, list) and all(isinstance(name, str) for name in layers):
            return {name: "all" for name in layers}
        if not isinstance(layers, dict):
            raise ValueError(f"must be a mapping of layer names to channels, or a list of layer names, got "
                             f"{_short(layers)}")
        return layers

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
        if "diversity" in overrides:
            raise ValueError("diversity is a job field (diversity: N), not an override")
        check_settings(overrides, "overrides")
        return overrides

    @model_validator(mode="after")
    def _render_settings_are_valid(self) -> "JobSpec":
        if not self.layers and self.logits is None:
            raise ValueError("a job needs layers, logits or both")
        self.render_config()  # raises FeatvisError (a ValueError) on a bad preset or override
        return self

    def render_config(self) -> RenderConfig:
        """The effective render config: the preset with the job's overrides and diversity."""
        return render_config(self.preset, self.overrides, "overrides", diversity=self.diversity)


def _short(value: Any) -> str:
    return short(value, 60)


def one_line(text: str) -> str:
    """A message as one printable line: line breaks and other control characters escaped, length bounded."""
    return printable(text)


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
    """The first problem of a pydantic error as 'field: what was expected', in user words."""
    first = error.errors()[0]
    if first["type"] == "value_error":  # our own validators' messages, which may name the field already
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        return one_line(message if not where or message.startswith(where) else f"{where}: {message}")
    if first["type"] == "missing":
        return one_line(f"{'.'.join(map(str, first['loc']))}: required field is missing")
    if first["type"] == "extra_forbidden":
        return one_line(f"{'.'.join(map(str, first['loc']))}: unknown field")
    return explain(error)


def load_jobs(path: Path | str) -> dict[str, JobSpec]:
    """Every job of a flows.yaml, validated; a FeatvisError names the file, job and field at fault."""
    path = Path(path)
    try:
        raw = yamlfile.load_file(path)
    except FileNotFoundError:
        raise FeatvisError(one_line(f"{path}: no such file")) from None
    except IsADirectoryError:
        raise FeatvisError(one_line(f"{path}: is a folder, not a flows.yaml")) from None
    except UnicodeDecodeError as error:
        raise FeatvisError(one_line(f"{path}: is not UTF-8 text (byte {error.start})")) from None
    except OSError as error:
        raise FeatvisError(one_line(f"{path}: cannot be read ({error.strerror or error})")) from None
    except yamlfile.TooLarge as error:
        raise FeatvisError(one_line(f"{path}: {error}")) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).strip().splitlines()[0]
        raise FeatvisError(one_line(f"{path}:{where} is not valid YAML ({problem})")) from None
    except RecursionError:
        raise FeatvisError(one_line(f"{path}: is nested too deeply")) from None
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

