"""Dataset examples of a job: shards of an image folder -> per-layer running top-k -> per-unit lists.

The folder's images are known by their content (sha256), sorted by path and cut into **shards** at
content-defined boundaries (an image whose id falls in a 1/`shard` slice ends a shard), so adding images
changes only the shards they land in. Each (shard, layer) result is cached in the store under a key of
the shard's image ids, the model and its weights, the layer and the crop settings: a rerun computes only
new shards and new layers (every channel of a layer is scored, so adding channels costs nothing). A
shard is one Prefect task: one truncated forward pass over its images and crops for every layer it
lacks. Shards merge one at a time into per-unit lists (memory flat in the folder's size), and each view a
unit shows gets one thumbnail, shared by every unit that shows it. Store layout: STORE.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from featvis_core import FeatvisError, Kind, Unit

from .extras_spec import ExamplesSpec
from .store import Store, file_entry
from .terminal import printable

EXAMPLES = "examples"
THUMB = 128
MAX_IMAGE_BYTES = 512 << 20  # a larger file in an image folder is skipped, not hashed
log = logging.getLogger("featvis.examples")
#: scikit-image's photographs that ship inside its wheel (others in skimage.data need a download)
SKIMAGE_PHOTOS = ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png",
                  "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png",
                  "motorcycle_left.png", "motorcycle_right.png", "retina.jpg", "rocket.jpg")
_progress: dict[str, Callable[[int], None]] = {}  # run id -> progress callback (thread runners only)


@dataclass(frozen=True)
class FolderImage:
    rel: str  # path inside the folder (shown on pages)
    path: str  # absolute path
    id: str  # 16 hex digits of its sha256


def resolve_folder(folder: str, flows_dir: Path = Path(".")) -> tuple[Path, list[Path]]:
    """The folder and its image files. "skimage" is the photographs inside scikit-image's wheel."""
    if folder == "skimage":
        try:
            import skimage.data
        except ImportError:
            raise FeatvisError("examples folder 'skimage' needs scikit-image: pip install scikit-image") from None
        root = Path(skimage.data.__file__).parent
        return root, [root / name for name in SKIMAGE_PHOTOS if (root / name).is_file()]
    from featvis_core.examples import list_images

    root = Path(folder).expanduser()
    root = root if root.is_absolute() else flows_dir / root
    if not root.is_dir():
        raise FeatvisError(f"examples folder {folder!r} is not a folder")
    files = list_images(root)
    if not files:
        raise FeatvisError(f"examples folder {folder!r} holds no JPEG or PNG files")
    return root, files


def index_images(store: Store, root: Path, files: list[Path]) -> list[FolderImage]:
    """Content ids of the folder's images, re-hashing only files whose size or mtime changed since the
    last run (kept in examples/index/<folder hash>.json)."""
    from featvis_core.examples import image_id

    relative = f"{EXAMPLES}/index/{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]}.json"
    known = read_json(store, relative, 64 << 20)
    known = known if isinstance(known, dict) else {}
    images, fresh = [], {}
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            info = path.lstat()
            if info.st_size > MAX_IMAGE_BYTES:
                raise OSError(f"{info.st_size:,} bytes, more than the {MAX_IMAGE_BYTES:,} an image may have")
            entry = known.get(rel)
            if isinstance(entry, list) and len(entry) == 3 and entry[:2] == [info.st_size, info.st_mtime_ns]:
                ident = str(entry[2])
            else:
                ident = image_id(path)  # a regular file only, never through a link (it may have changed)
        except OSError as error:
            log.warning("skipping %s: %s", printable(rel, 300), printable(error.strerror or error, 300))
            continue
        fresh[rel] = [info.st_size, info.st_mtime_ns, ident]
        images.append(FolderImage(rel, str(path), ident))
    if fresh != known:
        store.write_json(relative, fresh)
    return images


def read_json(store: Store, relative: str, limit: int) -> Any:
    """A JSON file of the store's extras: None when it is absent, a link, not a regular file, too large or not
    JSON (it is then computed again, and written in its place)."""
    from .storeformat import StoreFormatError, read_capped

    try:
        return json.loads(read_capped(store.checked(relative), limit))
    except (OSError, ValueError, StoreFormatError, RecursionError):
        return None


def shard_bounds(ids: list[str], size: int) -> list[tuple[int, int]]:
    """[start, end) of each shard: a shard ends after an image whose id says so (1 in `size`), or at
    2 x `size` images. Inserting images moves only the boundaries near them."""
    bounds, start = [], 0
    for i, ident in enumerate(ids):
        if int(ident[:8], 16) % size == size - 1 or i + 1 - start >= 2 * size or i == len(ids) - 1:
            bounds.append((start, i + 1))
            start = i + 1
    return bounds


def example_layers(units: Iterable[Unit]) -> list[str]:
    """Layers whose units get examples (channels, negative channels, logits), in job order."""
    kinds = (Kind.CHANNEL, Kind.NEGATIVE, Kind.LOGIT)
    return list(dict.fromkeys(u.layer for u in units if u.kind in kinds))


def shard_key(model: str, fingerprint: str, layer: str, ids: list[str], spec: ExamplesSpec, size: int) -> str:
    from featvis_core.examples import EXAMPLES_VERSION

    payload = {"model": model, "weights": fingerprint, "layer": layer, "images": ids, "size": size,
               "crops": asdict(spec.crop_spec()), "top": spec.top, "negatives": spec.negatives,
               "version": EXAMPLES_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def shard_path(model_dir: str, layer: str, key: str) -> str:
    return f"{EXAMPLES}/shards/{model_dir}/{layer}/{key[:20]}.json"


@dataclass(frozen=True)
class Shard:
    """One shard task's work: plain data, so it crosses process boundaries as it is."""

    store: str
    model: str
    index: int
    paths: tuple[str, ...]
    ids: tuple[str, ...]
    layers: tuple[str, ...]  # layers this shard still lacks
    files: tuple[str, ...]  # where each layer's result goes (store-relative)
    keys: tuple[str, ...]
    spec: dict[str, Any] = field(hash=False)
    progress: str = ""


def scan_shard(shard: Shard) -> dict[str, Any]:
    """Score every view of the shard's images for every channel of its layers; write one file per layer."""
    from featvis_core.examples import scan, views_of

    from . import devices
    from .tiles import model_on

    began = time.perf_counter()
    spec = ExamplesSpec.model_validate(shard.spec)
    crops = spec.crop_spec()
    model = model_on(shard.model, devices.current())
    report = _progress.get(shard.progress)
    batches = views_of([Path(p) for p in shard.paths], shard.ids, crops, model.input_size, spec.batch)
    tops = scan(model, batches, shard.layers, spec.top, spec.negatives, on_batch=report)
    per = crops.crops + 1
    store = Store(shard.store)
    for layer, key, relative in zip(shard.layers, shard.keys, shard.files):
        # no readable image in the shard (each was skipped with a warning): it has no examples, and says so
        top, low = tops[layer].lists() if layer in tops else ([], [])
        sample = lambda n: [shard.ids[n // per], n % per]  # noqa: E731
        data = {"schema": 1, "key": key, "layer": layer, "images": list(shard.ids), "views": per,
                "top": [[[round(s, 4), *sample(n)] for s, n in row] for row in top],
                "bottom": [[[round(s, 4), *sample(n)] for s, n in row] for row in low]}
        store.write_json(relative, data)
    return {"shard": shard.index, "views": len(shard.paths) * per, "seconds": time.perf_counter() - began}


def _read_shard(store: Store, relative: str, key: str) -> dict[str, Any] | None:
    data = read_json(store, relative, 256 << 20)
    if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("top"), list):
        return None
    return data


@dataclass
class ExamplePlan:
    """What the example pass of a job needs: images, shards, and which (shard, layer) are missing."""

    spec: ExamplesSpec
    root: Path
    images: list[FolderImage]
    layers: list[str]
    bounds: list[tuple[int, int]]
    keys: dict[tuple[int, str], str]  # (shard, layer) -> key
    missing: dict[int, list[str]]  # shard -> layers to compute

    @property
    def views(self) -> int:
        return len(self.images) * (self.spec.crops + 1)

    def missing_views(self) -> int:
        return sum((self.bounds[s][1] - self.bounds[s][0]) * (self.spec.crops + 1) for s in self.missing)

    @property
    def key(self) -> str:
        """The folder's content x model x layers x settings: names the merged result."""
        return hashlib.sha256(json.dumps(sorted(self.keys.values())).encode()).hexdigest()


def plan_examples(spec: ExamplesSpec, store: Store, model_name: str, fingerprint: str, model_dir: str,
                  input_size: int, units: list[Unit], flows_dir: Path = Path(".")) -> ExamplePlan:
    root, files = resolve_folder(spec.folder, flows_dir)
    images = index_images(store, root, files)
    ids = [image.id for image in images]
    layers = example_layers(units)
    bounds = shard_bounds(ids, spec.shard)
    keys, missing = {}, {}
    for s, (start, end) in enumerate(bounds):
        for layer in layers:
            key = shard_key(model_name, fingerprint, layer, ids[start:end], spec, input_size)
            keys[(s, layer)] = key
            if _read_shard(store, shard_path(model_dir, layer, key), key) is None:
                missing.setdefault(s, []).append(layer)
    return ExamplePlan(spec, root, images, layers, bounds, keys, missing)


def shard_tasks(plan: ExamplePlan, store: Store, model_name: str, model_dir: str, progress: str = "") -> list[Shard]:
    shards = []
    for s, layers in sorted(plan.missing.items()):
        start, end = plan.bounds[s]
        chosen = plan.images[start:end]
        shards.append(Shard(
            str(store.root), model_name, s, tuple(i.path for i in chosen), tuple(i.id for i in chosen),
            tuple(layers), tuple(shard_path(model_dir, layer, plan.keys[(s, layer)]) for layer in layers),
            tuple(plan.keys[(s, layer)] for layer in layers), plan.spec.model_dump(), progress))
    return shards


def _fold(merged: list[list[list[Any]]] | None, rows: list[Any], k: int, largest: bool) -> list[list[list[Any]]]:
    """Merge one shard's per-unit lists into the running merged lists (k best per unit)."""
    from featvis_core.examples import merge

    if not rows:  # a shard without a readable image adds nothing
        return merged
    if not merged:
        return [list(row)[:k] for row in rows]
    return [[list(p) for p in merge([a, b], k, largest)] for a, b in zip(merged, rows)]


def merge_layers(plan: ExamplePlan, store: Store, model_dir: str) -> dict[str, dict[str, list]]:
    """Per layer: {"top": per-channel lists, "bottom": ...}, folded one shard at a time."""
    merged: dict[str, dict[str, list]] = {}
    for layer in plan.layers:
        top = low = None
        for s in range(len(plan.bounds)):
            key = plan.keys[(s, layer)]
            data = _read_shard(store, shard_path(model_dir, layer, key), key)
            if data is None:
                raise RuntimeError(f"examples shard {s} of {layer} is missing after its task ran")
            top = _fold(top, data["top"], plan.spec.top, True)
            low = _fold(low, data["bottom"], plan.spec.negatives, False)
        merged[layer] = {"top": top or [], "bottom": low or []}
    return merged


def unit_examples(units: list[Unit], merged: dict[str, dict[str, list]]) -> dict[str, dict[str, list]]:
    """Each unit's strongest and most negative views. A negative channel's strongest are its channel's
    most negative ones."""
    chosen = {}
    for unit in units:
        lists = merged.get(unit.layer)
        if lists is None or unit.index is None or unit.index >= len(lists["top"]):
            continue
        top, low = lists["top"][unit.index], lists["bottom"][unit.index] if lists["bottom"] else []
        if unit.kind is Kind.NEGATIVE:
            top, low = [[-s, i, v] for s, i, v in low], [[-s, i, v] for s, i, v in top]
        chosen[unit.spec] = {"top": top, "bottom": low}
    return chosen


def thumb_path(ident: str, view: int, crop_key: str) -> str:
    name = "v0000" if view == 0 else f"{crop_key}-v{view:04d}"
    return f"{EXAMPLES}/images/{ident}/{name}.webp"


def write_thumbs(plan: ExamplePlan, store: Store, chosen: dict[str, dict[str, list]]) -> dict[str, dict[str, Any]]:
    """One 128 px WebP per view that some unit shows, written once (shared by every unit and run)."""
    from featvis_core.examples import open_rgb, view_image

    crops = plan.spec.crop_spec()
    by_id = {image.id: image for image in plan.images}
    wanted: dict[str, set[int]] = {}
    for lists in chosen.values():
        for _, ident, view in lists["top"] + lists["bottom"]:
            wanted.setdefault(ident, set()).add(view)
    entries = {}
    for ident, views in sorted(wanted.items()):
        image = None
        for view in sorted(views):
            relative = thumb_path(ident, view, crops.key)
            target = store.checked(relative.rpartition("/")[0]) / relative.rpartition("/")[2]  # no link on the way
            if target.is_symlink() or not target.is_file():  # a link in its place is replaced, never followed
                image = image or open_rgb(Path(by_id[ident].path))
                picture = view_image(image, ident, view, crops, THUMB)
                store.write_file(relative, lambda path, p=picture: p.save(path, format="WEBP", quality=85))
            entry = file_entry(store.root, relative)
            entries[relative] = {"sha256": entry["sha256"], "bytes": entry["bytes"]}
    return entries


def examples_section(plan: ExamplePlan, chosen: dict[str, dict[str, list]], thumbs: dict[str, Any],
                     stats: dict[str, Any]) -> dict[str, Any]:
    """The `examples` part of the job's extras manifest (STORE.md)."""
    shown = {ident for lists in chosen.values() for _, ident, _ in lists["top"] + lists["bottom"]}
    return {
        "folder": plan.spec.folder, "key": plan.key, "crops": asdict(plan.spec.crop_spec()),
        "crop_key": plan.spec.crop_spec().key, "top": plan.spec.top, "negatives": plan.spec.negatives,
        "images": [{"id": i.id, "name": i.rel} for i in plan.images if i.id in shown],
        "count": len(plan.images), "units": chosen, "thumbs": thumbs, "stats": stats,
    }


class Progress:
    """A progress callback that shard tasks in this process reach by name (thread runners)."""

    def __init__(self, callback: Callable[[int], None]):
        self.name = f"p{id(self)}"
        self._lock = threading.Lock()
        self._callback = callback

    def __enter__(self) -> "Progress":
        _progress[self.name] = self._call
        return self

    def _call(self, n: int) -> None:
        with self._lock:
            self._callback(n)

    def __exit__(self, *_: Any) -> None:
        _progress.pop(self.name, None)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


