"""Fake featvis stores for tests and benchmarks, in the exact on-disk format of pipeline/STORE.md (every meta.json
and manifest is validated against featvis_pipeline.storeformat's records before it is written).

The media are real files (PNG, WebP, H.264 MP4) with correct sha256 in meta.json, so the
site generator, the link checker and a real browser see what they would see on a store the pipeline wrote.
``pool`` reuses a few distinct media across units so a whole-model store (thousands of units) is made in
seconds: the bench measures the site generator, not the fake renderer.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from featvis_core import RENDERER_VERSION
from featvis_core.units import caption, unit_from_spec
from featvis_pipeline.storeformat import SCHEMA, Manifest, Meta, ModelCard, model_dir

FIRST_CLASSES = [
    "tench", "goldfish", "great white shark", "tiger shark", "hammerhead", "electric ray", "stingray",
    "cock", "hen", "ostrich", "brambling", "goldfinch", "house finch", "junco", "indigo bunting", "robin",
    "bulbul", "jay", "magpie", "chickadee", "water ouzel", "kite", "bald eagle", "vulture", "great grey owl",
]
_ADJ = ["red", "spotted", "alpine", "giant", "lesser", "golden", "striped", "desert", "arctic", "common",
        "royal", "pygmy", "crested", "silver", "black", "woolly", "marsh", "river", "forest", "coastal"]
_NOUN = ["heron", "beetle", "fox", "lizard", "maple", "teapot", "canoe", "lantern", "violin", "bison",
         "kettle", "mongoose", "tortoise", "umbrella", "ferret", "cactus", "piano", "puffin", "anchor",
         "marmot", "wrench", "orchid", "pelican", "trumpet", "walrus", "zebra", "yak", "acorn", "harp",
         "badger", "comet", "dinghy", "falcon", "gecko", "ibis", "jackal", "koala", "lynx", "moth", "newt",
         "otter", "parrot", "quail", "raven", "salmon", "toucan", "urchin", "viper", "wombat", "sparrow"]


def class_names(n: int = 1000) -> list[str]:
    """Deterministic, unique, ImageNet-flavoured class names (the first 25 are ImageNet's own)."""
    names = list(FIRST_CLASSES[:n])
    combos = [f"{a} {b}" for b in _NOUN for a in _ADJ]
    names += combos[: max(0, n - len(names))]
    i = 0
    while len(names) < n:
        names.append(f"synthetic class {i}")
        i += 1
    return names


@dataclass
class SyntheticModel:
    """What to fake for one model. ``render`` maps a layer to the channels its job asks for."""

    name: str = "toynet"
    layers: dict[str, int] = field(default_factory=lambda: {"stem": 8, "block1": 12, "block2": 16})
    render: dict[str, int | Sequence[int]] = field(default_factory=lambda: {"block1": 6, "block2": 8})
    logits: int | Sequence[int] = 20
    n_classes: int = 1000
    pending_every: int = 7  # every n-th unit of the manifest is pending (0: none)
    failed: int = 1  # this many units are failed
    corrupt: int = 1  # this many done units have a file that fails its sha256
    diversity: int = 3  # images per unit, the first is image.webp; the rest go to diversity/
    video: bool = True
    filters: bool = True
    size: int = 96  # full render size (even, for H.264)
    thumb: int = 64
    frames: int = 8
    steps: int = 64
    job: str = "demo"
    preset: str = "fast"
    other_kinds: bool = False  # also neurons, a negative channel and DeepDream on the first rendered layer
    legacy_anim: bool = False  # also an anim.webp hover preview per unit (role anim_webp), as older stores have


def _pattern(rng: random.Random, size: int) -> np.ndarray:
    """A colourful feature-visualisation-looking texture (sum of oriented sinusoids)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.zeros((size, size, 3), np.float32)
    for _ in range(4):
        theta, freq = rng.uniform(0, math.pi), rng.uniform(3, 14)
        phase = rng.uniform(0, 2 * math.pi)
        wave = np.sin(2 * math.pi * freq * (x * math.cos(theta) + y * math.sin(theta)) + phase)
        colour = np.array([rng.random(), rng.random(), rng.random()], np.float32)
        img += wave[..., None] * colour[None, None, :]
    img = (img - img.min()) / (np.ptp(img) + 1e-6)
    return (img * 255).astype(np.uint8)


def _frames(final: np.ndarray, count: int, rng: random.Random) -> list[np.ndarray]:
    """The 'optimisation': noise fading into the final image."""
    noise = np.array(np.random.default_rng(rng.randrange(1 << 30)).integers(0, 256, final.shape), np.float32)
    out = []
    for i in range(count):
        t = (i + 1) / count
        out.append((noise * (1 - t) + final.astype(np.float32) * t).clip(0, 255).astype(np.uint8))
    return out


def _encode(img: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _mp4(frames: list[np.ndarray], fps: int = 8) -> bytes:
    import tempfile

    import imageio.v2 as imageio

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "anim.mp4"
        writer = imageio.get_writer(
            path, fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=1,
            ffmpeg_log_level="error", output_params=["-movflags", "+faststart"],
        )
        for frame in frames:
            writer.append_data(frame)
        writer.close()
        return path.read_bytes()


@dataclass
class _Media:
    files: dict[str, bytes]  # relative path -> bytes (image.png, image.webp, thumb.webp, ...)


def _make_media(spec: SyntheticModel, rng: random.Random, video: bytes | None) -> _Media:
    final = _pattern(rng, spec.size)
    image = Image.fromarray(final)
    thumb = image.resize((spec.thumb, spec.thumb), Image.LANCZOS)
    frames = _frames(final, spec.frames, rng)  # drawn even when unused: the same seed makes the same store
    files = {
        "image.png": _encode(image, "PNG"),
        "image.webp": _encode(image, "WEBP", quality=90),
        "thumb.webp": _encode(thumb, "WEBP", quality=80),
    }
    if spec.legacy_anim:
        anim = [Image.fromarray(f).resize((spec.thumb, spec.thumb), Image.BILINEAR) for f in frames]
        files["anim.webp"] = _encode(anim[0], "WEBP", save_all=True, append_images=anim[1:], duration=90, loop=0,
                                     quality=70)
    if video is not None:
        files["anim.mp4"] = video
    for i in range(1, spec.diversity):
        files[f"diversity/{i}.webp"] = _encode(Image.fromarray(_pattern(rng, spec.size)), "WEBP", quality=90)
    return _Media(files)


def _entry(rel: str, data: bytes) -> dict[str, Any]:
    return {"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _history(rng: random.Random, steps: int, final: float) -> list[float]:
    tau = rng.uniform(steps / 10, steps / 3)
    start = rng.uniform(-0.5, 0.5)
    return [
        round(start + (final - start) * (1 - math.exp(-t / tau)) + rng.gauss(0, final * 0.02), 5)
        for t in range(steps)
    ]


def _settings(spec: SyntheticModel) -> dict[str, Any]:
    return {
        "preset": spec.preset, "steps": spec.steps, "size": spec.size, "lr": 0.05, "param": "fft",
        "decorrelate": True, "transforms": {"jitter": 8, "scale": [0.9, 1.1], "rotate": [-10, 10]},
        "diversity": spec.diversity, "video": {"format": "h264", "frames": spec.frames},
    }


def _write_filters(path: Path, rng: random.Random, tiles: int = 32, k: int = 7) -> None:
    cols = 8
    rows = math.ceil(tiles / cols)
    sheet = np.full((rows * (k + 1) + 1, cols * (k + 1) + 1, 3), 255, np.uint8)
    for t in range(tiles):
        r, c = divmod(t, cols)
        sheet[1 + r * (k + 1): 1 + r * (k + 1) + k, 1 + c * (k + 1): 1 + c * (k + 1) + k] = _pattern(rng, k)
    Image.fromarray(sheet).save(path)


def _unit_plan(spec: SyntheticModel) -> list[dict[str, Any]]:
    units = []
    for layer, chans in spec.render.items():
        indices = range(chans) if isinstance(chans, int) else chans
        for c in indices:
            units.append({"unit": f"{layer}:{c}", "layer": layer, "kind": "channel", "index": c,
                          "label": f"{layer} channel {c}", "slug": f"c{c:04d}"})
    if spec.other_kinds and spec.render:
        layer = next(iter(spec.render))
        units += [
            {"unit": f"{layer}:0@", "layer": layer, "kind": "neuron", "index": 0,
             "label": f"{layer} neuron 0 (centre)", "slug": "n0000"},
            {"unit": f"{layer}:1@7/7", "layer": layer, "kind": "neuron", "index": 1,
             "label": f"{layer} neuron 1 (x=7, y=7)", "slug": "n0001-x7-y7"},
            {"unit": f"{layer}:!2", "layer": layer, "kind": "negative", "index": 2,
             "label": f"{layer} negative channel 2", "slug": "neg0002"},
            {"unit": f"{layer}:dream", "layer": layer, "kind": "layer", "index": None,
             "label": f"{layer} (whole layer)", "slug": "dream"},
        ]
    logits = range(spec.logits) if isinstance(spec.logits, int) else spec.logits
    names = class_names(spec.n_classes)
    for k in logits:
        units.append({"unit": f"logits:{k}", "layer": "logits", "kind": "logit", "index": k,
                      "label": names[k], "slug": f"k{k:04d}"})
    return units


def make_store(
    root: Path | str,
    models: Sequence[SyntheticModel] = (SyntheticModel(),),
    *,
    pool: int | None = None,
    seed: int = 0,
) -> Path:
    """Write a fake store under ``root`` and return it.

    pool: None makes distinct images per unit (pretty screenshots); an int reuses that many media sets
    (fast, for thousands of units). Videos are always pooled (4 distinct clips): encoding is the slow part.
    """
    root = Path(root)
    rng = random.Random(seed)
    (root / "manifests").mkdir(parents=True, exist_ok=True)
    (root / "locks").mkdir(exist_ok=True)
    for spec in models:
        mdir = root / model_dir(spec.name)
        mdir.mkdir(parents=True, exist_ok=True)
        videos = []
        if spec.video:
            for _ in range(4):
                videos.append(_mp4(_frames(_pattern(rng, spec.size), spec.frames, rng)))
        media_pool = [_make_media(spec, rng, videos[i % 4] if videos else None) for i in range(pool or 0)]
        settings = _settings(spec)
        card = {
            "schema": SCHEMA, "model": spec.name, "source": "embedded",
            "weights": hashlib.sha256(spec.name.encode()).hexdigest()[:16], "input_size": spec.size,
            "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
            "layers": [{"name": n, "channels": c, "height": 14, "width": 14} for n, c in spec.layers.items()],
            "classes": class_names(spec.n_classes),
        }
        if spec.filters:
            _write_filters(mdir / "filters.png", rng)
            card["filters"] = "filters.png"
        ModelCard.model_validate_json(json.dumps(card))
        (mdir / "model.json").write_text(json.dumps(card, indent=1))

        plan = _unit_plan(spec)
        failed_left, corrupt_left = spec.failed, spec.corrupt
        manifest_units, counts = [], {"done": 0, "pending": 0, "failed": 0}
        for i, u in enumerate(plan):
            key = hashlib.sha256(f"{spec.name}|{u['unit']}|{json.dumps(settings, sort_keys=True)}".encode()).hexdigest()
            path = f"{model_dir(spec.name)}/{u['layer']}/{u['slug']}@{key[:12]}"
            state, error = "done", None
            if spec.pending_every and i % spec.pending_every == spec.pending_every - 1:
                state = "pending"
            elif failed_left and i % 5 == 3:
                state, error, failed_left = "failed", "loss became NaN at step 17", failed_left - 1
            counts[state] += 1
            manifest_units.append({"unit": u["unit"], "layer": u["layer"], "kind": u["kind"], "index": u["index"],
                                   "label": u["label"], "caption": caption(unit_from_spec(u["unit"]), card["classes"]),
                                   "key": key, "state": state, "path": path, "error": error})
            if state == "pending":
                continue
            udir = root / path
            (udir / "diversity").mkdir(parents=True, exist_ok=True)
            if state == "failed":
                meta_files: dict[str, Any] = {}
            else:
                media = media_pool[i % pool] if pool else _make_media(spec, rng, videos[i % 4] if videos else None)
                for rel, data in media.files.items():
                    (udir / rel).write_bytes(data)
                div = [_entry(rel, d) for rel, d in media.files.items() if rel.startswith("diversity/")]
                roles = {"image": "image.png", "image_web": "image.webp", "thumb": "thumb.webp",
                         "anim_webp": "anim.webp", "mp4": "anim.mp4"}
                meta_files = {role: _entry(rel, media.files[rel]) for role, rel in roles.items() if rel in media.files}
                meta_files["diversity"] = div
            final = rng.uniform(2, 30) if state == "done" else float("nan")
            history = _history(rng, spec.steps, final) if state == "done" else []
            scores: dict[str, float] = {"activation": round(max(history or [0.0]), 4)}
            if u["kind"] == "logit":
                scores.update({"self_top1": float(rng.random() < 0.7), "self_top5": float(rng.random() < 0.9),
                               "lite1_top1": float(rng.random() < 0.5), "lite1_top5": float(rng.random() < 0.8)})
            meta = {
                "schema": SCHEMA, "key": key, "model": spec.name, "layer": u["layer"], "unit": u["unit"],
                "kind": u["kind"], "index": u["index"], "label": u["label"],
                "status": "done" if state == "done" else "failed", "error": error,
                "renderer_version": RENDERER_VERSION, "settings": settings, "size": [spec.size, spec.size],
                "activation": {"start": history[0] if history else None, "final": history[-1] if history else None,
                               "best": max(history) if history else None, "history": history},
                "loss": [-h for h in history], "scores": scores if state == "done" else {},
                "files": meta_files,
                "timings": {"render_s": round(rng.uniform(0.5, 3), 3), "tile_units": 16, "steps": spec.steps,
                            "device": "cpu"},
                "created": "2026-11-21T20:00:00+00:00",
            }
            Meta.model_validate_json(json.dumps(meta))  # the fake is in the real format
            (udir / "meta.json").write_text(json.dumps(meta))
            if state == "done" and corrupt_left and i % 4 == 1:
                with open(udir / "thumb.webp", "r+b") as fh:  # bit rot after the render: sha256 now fails
                    fh.seek(20)
                    fh.write(b"\x00\x01\x02\x03")
                corrupt_left -= 1
        # a partial write the site must ignore
        (mdir / next(iter(spec.render), "logits") / ".c9999@deadbeef0000.tmp").mkdir(parents=True, exist_ok=True)
        manifest = {
            "schema": SCHEMA, "job": spec.job if len(models) == 1 else f"{spec.job}-{model_dir(spec.name)}", "model": spec.name,
            "preset": spec.preset, "settings": settings, "updated": "2026-11-21T20:00:00+00:00",
            "counts": counts, "units": manifest_units,
        }
        Manifest.model_validate_json(json.dumps(manifest)).check_layout()
        (root / "manifests" / f"{manifest['job']}.json").write_text(json.dumps(manifest, indent=1))
    return root


def bench_model(name: str = "resnet50", channels: Sequence[int] = (256, 512, 1024, 2048), logits: int = 1000,
                pending_every: int = 0, size: int = 224, thumb: int = 128, frames: int = 16) -> SyntheticModel:
    """A whole-model spec: every channel of the four ResNet-50 stages plus all 1000 logits."""
    layers = {f"layer{i + 1}": c for i, c in enumerate(channels)}
    return SyntheticModel(name=name, layers={"conv1": 64, **layers}, render=dict(layers), logits=logits,
                          pending_every=pending_every, failed=0, corrupt=0, diversity=1, size=size, thumb=thumb,
                          frames=frames, steps=256)
