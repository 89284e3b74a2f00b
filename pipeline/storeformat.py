"""The on-disk store format (pipeline/STORE.md), in one place for the pipeline that writes it and the site that
reads it.

A store is a folder people copy, share and restore, so everything read from it is untrusted: paths are
checked against the store's own layout (`model/layer/slug@key12`, files inside their unit folder) and
against containment (no `..`, no absolute path, no symbolic link) before anything is read, written or
removed; JSON files are read with a size cap and without following a symbolic link, and validated into
typed records whose errors read as one line. Torch-free and Prefect-free: `featvis_site` imports it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

SCHEMA = 1
META = "meta.json"
MODEL_CARD = "model.json"
FILTERS = "filters.png"
MANIFESTS = "manifests"
LOCKS = "locks"
LOGITS = "logits"
STATES = ("done", "pending", "failed")
#: file roles of a done unit: required ones, ones the site shows when present, and the list of extra images.
#: Older stores also list "anim_webp" (an animated WebP hover preview, no longer written): like any listed
#: file it is checked, but the site neither shows nor publishes it (the MP4 is the hover preview now).
REQUIRED_ROLES = ("image", "image_web", "thumb")
OPTIONAL_ROLES = ("mp4",)
DIVERSITY = "diversity"
#: reading caps: a whole-model manifest (5,000 units) is ~2 MB, a meta.json with 100k steps of history ~4 MB
MAX_MANIFEST_BYTES = 64 << 20
MAX_META_BYTES = 16 << 20
MAX_CARD_BYTES = 16 << 20

_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}"  # one folder name: never '.', '..', hidden or with a slash
NAME = re.compile(_NAME)
SLUG = re.compile(r"(?:c|k|t|neg)\d{4,9}|n\d{4,9}(?:-x\d{1,6}-y\d{1,6})?|d[0-9a-f]{12}|dream")
UNIT_FOLDER = re.compile(rf"(?P<slug>{SLUG.pattern})@(?P<key12>[0-9a-f]{{12}})")
FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}(?:/[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63})?")
JOB = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
#: the folders of a job's extras (pipeline/extras.py), written like units: an explain page's files, a dive
EXTRA_FOLDER = re.compile(rf"examples/explain/{_NAME}/[0-9a-f]{{16}}@[0-9a-f]{{12}}|zoom/{_NAME}/k\d{{4,9}}@[0-9a-f]{{12}}")


class StoreFormatError(ValueError):
    """Something in a store breaks its format; the message is one line naming the file and field."""


# -- checksums and reading ---------------------------------------------------------------------------


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a regular file, streamed (videos can be large), never through a symbolic link."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with open(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise StoreFormatError("is not a regular file")
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_capped(path: Path, limit: int) -> bytes:
    """A regular file's bytes, refused (StoreFormatError saying what it is instead, without the path) when it is
    a symbolic link, a special file or larger than `limit`; FileNotFoundError when it is absent."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise StoreFormatError("is a symbolic link") from None
        raise
    with open(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise StoreFormatError("is not a regular file")
        if info.st_size > limit:
            raise StoreFormatError(f"is {info.st_size:,} bytes, more than the {limit:,} this format allows")
        return handle.read(limit + 1)[:limit]


# -- layout and containment -------------------------------------------------------------------------


def model_dir(name: str) -> str:
    """Folder name of a model in the store ("timm:resnet50" -> "timm-resnet50")."""
    folder = re.sub(r"[^A-Za-z0-9_.\-]+", "-", name).lstrip(".-")[:128]
    return folder or "model"


def unit_path(model: str, layer: str, slug: str, key: str) -> str:
    """Store-relative path of a unit, checked against the layout."""
    path = f"{model}/{layer}/{slug}@{key[:12]}"
    parse_unit_path(path)
    return path


@dataclass(frozen=True)
class UnitPath:
    """The parts of a unit folder's store-relative path."""

    model: str
    layer: str
    slug: str
    key12: str


def parse_unit_path(path: Any) -> UnitPath:
    """Split `model/layer/slug@key12`; StoreFormatError for anything else (`..`, absolute, empty, extra parts)."""
    parts = path.split("/") if isinstance(path, str) else []
    if len(parts) != 3 or not NAME.fullmatch(parts[0]) or not NAME.fullmatch(parts[1]):
        raise StoreFormatError(f"path {_short(path)} is not a unit folder of this store (model/layer/slug@key)")
    match = UNIT_FOLDER.fullmatch(parts[2])
    if not match:
        raise StoreFormatError(f"path {_short(path)} is not a unit folder of this store (model/layer/slug@key)")
    return UnitPath(parts[0], parts[1], match["slug"], match["key12"])


def check_folder(relative: Any) -> str:
    """A folder written all at once (a unit, an explain page, a dive): its path if it fits the layout,
    StoreFormatError otherwise."""
    if isinstance(relative, str) and EXTRA_FOLDER.fullmatch(relative):
        return relative
    parse_unit_path(relative)
    return relative


def contained(root: Path, relative: str) -> Path:
    """`root/relative` after checking that it stays inside `root` with no symbolic link on the way.
    `relative` must already be a checked layout path (names without `..`)."""
    parts = relative.split("/")
    path = root.joinpath(*parts)
    if path.resolve() != root.resolve().joinpath(*parts):
        raise StoreFormatError(f"{relative} goes through a symbolic link or leaves the store")
    return path


def unit_folder(root: Path, relative: Any) -> Path:
    """The folder of a unit, after checking its path against the layout and containment."""
    parse_unit_path(relative)
    return contained(root, relative)


def store_folder(root: Path, name: str) -> Path:
    """A top-level folder of the store (a model folder, `manifests`, `locks`), refused when it is a link."""
    if not NAME.fullmatch(name):
        raise StoreFormatError(f"{name!r} cannot name a folder of the store")
    return contained(root, name)


# -- typed records -------------------------------------------------------------------------------------

Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Text = Annotated[str, StringConstraints(max_length=4096)]
Count = Annotated[int, Field(ge=0)]


class Record(BaseModel):
    """Strict types, unknown fields kept (a newer writer may add some), values never coerced."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


class FileEntry(Record):
    path: Annotated[str, StringConstraints(pattern=rf"^{FILE.pattern}$")]
    sha256: Hex64
    bytes: Count


class Activation(Record):
    start: float | None = None
    final: float | None = None
    best: float | None = None
    history: list[float | None] = Field(default_factory=list, max_length=1_000_000)


class Meta(Record):
    """A unit's meta.json."""

    schema_: Literal[1] = Field(alias="schema")
    key: Hex64
    status: Literal["done", "failed"]
    files: dict[str, list[FileEntry]] = Field(max_length=64)
    model: Text = ""
    layer: Text = ""
    unit: Text = ""
    kind: Text = ""
    index: int | None = None
    label: Text = ""
    error: Text | None = None
    renderer_version: Text = ""
    settings: dict[str, Any] = Field(default_factory=dict)
    size: tuple[Count, Count] | None = None
    activation: Activation = Field(default_factory=Activation)
    loss: list[float | None] = Field(default_factory=list, max_length=1_000_000)
    scores: dict[str, float | None] = Field(default_factory=dict, max_length=64)
    timings: dict[str, Any] = Field(default_factory=dict)
    created: Text | None = None

    @field_validator("files", mode="before")
    @classmethod
    def _as_lists(cls, files: Any) -> Any:
        """A role is one file entry or a list of them (diversity); read both as lists."""
        if isinstance(files, dict):
            return {role: value if isinstance(value, list) else [value] for role, value in files.items()}
        return files


class ManifestUnit(Record):
    unit: Text
    layer: Annotated[str, StringConstraints(pattern=rf"^{_NAME}$")]
    kind: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z_\-]{0,31}$")]
    index: int | None = None
    label: Text = ""
    caption: Text = ""  # short name under a thumbnail; older stores have none
    key: Hex64
    state: Literal["done", "pending", "failed"]
    path: Text
    error: Text | None = None


class Manifest(Record):
    """A job's manifest (`manifests/<job>.json`); every unit path is checked against the layout."""

    schema_: Literal[1] = Field(alias="schema")
    job: Annotated[str, StringConstraints(pattern=rf"^{JOB.pattern}$")]
    model: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    preset: Text | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    updated: Text = ""
    counts: dict[str, Count] = Field(default_factory=dict, max_length=16)
    units: list[ManifestUnit] = Field(max_length=1_000_000)

    def check_layout(self) -> None:
        """Every unit's path is `<model dir>/<its layer>/<slug>@<its key>`: StoreFormatError otherwise."""
        folder = model_dir(self.model)
        for i, entry in enumerate(self.units):
            try:
                where = parse_unit_path(entry.path)
            except StoreFormatError as error:
                raise StoreFormatError(f"units.{i}.path: {error}") from None
            if (where.model, where.layer, where.key12) != (folder, entry.layer, entry.key[:12]):
                raise StoreFormatError(f"units.{i}.path: {_short(entry.path)} is not {folder}/{entry.layer}/"
                                       f"<slug>@{entry.key[:12]}, the unit's own folder")


class LayerCard(Record):
    name: Text
    channels: Count | None = None
    height: Count | None = None
    width: Count | None = None
    layout: Literal["nchw", "nhwc", "tokens", "tokens+cls"] | None = None


class ModelCard(Record):
    """A model's model.json."""

    schema_: Literal[1] = Field(alias="schema")
    model: Text
    layers: list[LayerCard] = Field(default_factory=list, max_length=100_000)
    classes: list[Text] = Field(default_factory=list, max_length=1_000_000)
    filters: Literal["filters.png"] | None = None
    source: Text = ""
    weights: Text = ""
    input_size: Count | None = None
    mean: list[float] | None = Field(None, max_length=16)
    std: list[float] | None = Field(None, max_length=16)
    input_channels: Annotated[int, Field(ge=1, le=16)] | None = None
    shown_as: Text = "rgb"  # how images of input_channels channels are shown: grayscale, the first three...
    fixed_size: bool | None = None


def explain(error: ValidationError) -> str:
    """The first problem of a validation error in user words: 'units.3.key: must be 64 hex digits'."""
    first = error.errors()[0]
    # loc parts in parentheses are the tags of a union's forms, not fields the user wrote
    loc = ["schema" if part == "schema_" else part for part in first["loc"] if not str(part).startswith("(")]
    where = ".".join(str(part) for part in loc) or "the file"
    kind, context = first["type"], first.get("ctx") or {}
    words = {
        "missing": "is missing",
        "int_type": "must be a whole number",
        "float_type": "must be a number",
        "string_type": "must be text",
        "bool_type": "must be true or false",
        "list_type": "must be a list",
        "tuple_type": "must be a list",
        "dict_type": "must be a mapping",
        "model_type": "must be a mapping",
        "model_attributes_type": "must be a mapping",
        "json_invalid": "is not valid JSON",
        "json_type": "is not valid JSON",
        "literal_error": f"must be {context.get('expected', 'one of the allowed values')}",
        "string_pattern_mismatch": "has characters or a shape this format does not allow",
        "string_too_long": f"is longer than {context.get('max_length')} characters",
        "string_too_short": "must not be empty",
        "too_long": f"has more than {context.get('max_length')} items",
        "too_short": "has too few items",
        "greater_than_equal": f"must be at least {context.get('ge')}",
        "int_from_float": "must be a whole number",
        "finite_number": "must be a finite number",
        "extra_forbidden": "is not a known field",
    }
    message = words.get(kind, first["msg"])
    value = first.get("input")
    if kind != "missing" and (value is None or isinstance(value, (str, int, float, bool))):
        message += f", got {_short(value)}"
    if kind in ("json_invalid", "model_type") and where == "the file":  # the whole file, not one field
        return "is not valid JSON" if kind == "json_invalid" else "is not a JSON object"
    return _one_line(f"{where}: {message}")


def _at(path: Path, error: ValidationError) -> str:
    """'<path> is not valid JSON' for the whole file, '<path>: field: problem' for one field."""
    text = explain(error)
    return f"{path} {text}" if text.startswith("is not") else f"{path}: {text}"


def _short(value: Any) -> str:
    text = repr(value)
    return _one_line(text if len(text) <= 80 else text[:77] + "...")


def _one_line(text: str) -> str:
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def load(path: Path, record: type[Record], limit: int) -> Record:
    """Read and validate one JSON file of the store; StoreFormatError (one line) when it does not fit."""
    try:
        data = read_capped(path, limit)
    except StoreFormatError as error:
        raise StoreFormatError(f"{path} {error}") from None
    except OSError as error:
        raise StoreFormatError(f"{path} cannot be read ({error.strerror or error})") from None
    try:
        return record.model_validate_json(data)
    except ValidationError as error:
        raise StoreFormatError(_at(path, error)) from None


def load_manifest(path: Path) -> Manifest:
    """A manifest, validated and with every unit path checked against the layout."""
    manifest = load(path, Manifest, MAX_MANIFEST_BYTES)
    assert isinstance(manifest, Manifest)
    try:
        manifest.check_layout()
    except StoreFormatError as error:
        raise StoreFormatError(f"{path}: {error}") from None
    return manifest


# -- checking a unit ------------------------------------------------------------------------------------


@dataclass
class UnitCheck:
    """What `check_unit` found: the parsed meta (None when unreadable) and every problem, in words."""

    meta: Meta | None = None
    problems: list[str] = field(default_factory=list)
    files: dict[str, list[tuple[FileEntry, Path]]] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return not self.problems and self.meta is not None and self.meta.status == "done"


def check_unit(root: Path, relative: Any, key: str | None = None, *, checksums: bool = True) -> UnitCheck:
    """Check a unit folder: layout and containment of its path, meta.json (format, content key, status),
    and for a done unit every listed file (inside the folder, a regular file, size and sha256)."""
    check = UnitCheck()
    try:
        folder = unit_folder(root, relative)
    except StoreFormatError as error:
        check.problems.append(str(error))
        return check
    try:
        data = read_capped(folder / META, MAX_META_BYTES)
    except FileNotFoundError:
        check.problems.append("meta.json is missing")
        return check
    except StoreFormatError as error:
        check.problems.append(f"meta.json {error}")
        return check
    except OSError as error:
        check.problems.append(f"meta.json cannot be read ({error.strerror or error})")
        return check
    try:
        check.meta = Meta.model_validate_json(data)
    except ValidationError as error:
        check.problems.append(_meta_problem(data, error))
        return check
    meta = check.meta
    if key is not None and meta.key != key:
        check.problems.append("meta.json belongs to another content key (a stale unit)")
        return check
    if meta.status != "done":
        return check
    missing = [role for role in REQUIRED_ROLES if not meta.files.get(role)]
    if not any(meta.files.values()):
        check.problems.append("meta.json lists no files")
    elif missing:
        check.problems.append(f"meta.json lists no {missing[0]!r} file")
    for role, entries in meta.files.items():
        for entry in entries:
            check.problems += _check_file(folder, role, entry, check, checksums)
    return check


def _meta_problem(data: bytes, error: ValidationError) -> str:
    """Keep the plain phrases for the commonest damage (not JSON, not an object, a bad file entry)."""
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):
        return "meta.json is not valid JSON"
    if not isinstance(parsed, dict):
        return "meta.json is not a JSON object"
    loc = error.errors()[0]["loc"]
    if loc[:1] == ("files",):
        if len(loc) == 1:
            return "meta.json has no valid 'files' mapping"
        if len(loc) >= 4 and loc[3] == "path" and error.errors()[0]["type"] == "string_pattern_mismatch":
            return f"meta.json: {loc[1]!r} path escapes the unit folder"
        return f"meta.json has a bad {loc[1]!r} file entry"
    return f"meta.json: {explain(error)}"


def _check_file(folder: Path, role: str, entry: FileEntry, check: UnitCheck, checksums: bool) -> list[str]:
    try:
        path = contained(folder, entry.path)
    except StoreFormatError:
        return [f"meta.json: {role!r} path escapes the unit folder"]
    try:
        info = path.lstat()
    except OSError:
        return [f"{entry.path} is missing"]
    if not stat.S_ISREG(info.st_mode):
        return [f"{entry.path} is not a regular file"]
    if info.st_size != entry.bytes:
        return [f"{entry.path} has {info.st_size} bytes, expected {entry.bytes}"]
    if checksums:
        try:
            if sha256_file(path) != entry.sha256:
                return [f"{entry.path} does not match its checksum"]
        except (OSError, StoreFormatError):
            return [f"{entry.path} cannot be read"]
    check.files.setdefault(role, []).append((entry, path))
    return []
