"""A rendered unit's files and meta.json, as described in STORE.md."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from featvis_core import RENDERER_VERSION, UnitRender, media
from featvis_core.param import shown_as

from .store import now
from .storeformat import SCHEMA

THUMB = 192  # grid thumbnail side (px): sharp in the gallery's 150-200 px cells (images are 224 px by default)


def unit_filler(result: UnitRender, *, key: str, model: str, label: str, settings: dict[str, Any],
                scores: dict[str, float], device: str, tile_units: int):
    """A `Store.write_unit` callback that writes every file of one unit and returns its meta."""

    def fill(folder: Path) -> dict[str, Any]:
        media.write_png(folder / "image.png", result.image)
        media.write_webp(folder / "image.webp", result.image, quality=90)
        media.write_webp(folder / "thumb.webp", result.image, quality=80, size=min(THUMB, result.image.shape[-1]))
        media.write_mp4(folder / "anim.mp4", result.frames)
        diversity = []
        if result.extra:
            (folder / "diversity").mkdir()
            for i, image in enumerate(result.extra, start=1):
                media.write_webp(folder / "diversity" / f"{i}.webp", image, quality=90)
                diversity.append(f"diversity/{i}.webp")
        unit = result.unit
        return {
            "schema": SCHEMA,
            "key": key,
            "model": model,
            "layer": unit.layer,
            "unit": unit.spec,
            "kind": unit.kind.value,
            "index": unit.index,
            "label": label,
            "status": "done",
            "error": None,
            "renderer_version": RENDERER_VERSION,
            "settings": settings,
            "size": list(result.image.shape[-2:]),
            "channels": int(result.image.shape[0]),  # the model's input channels; the files show them as:
            "shown_as": shown_as(int(result.image.shape[0])),
            "activation": {"start": result.start, "final": result.final, "best": result.best,
                           "history": [round(v, 5) for v in result.history]},
            "loss": [round(v, 5) for v in result.loss],
            "scores": {"activation": result.final, **scores},
            "files": {"image": "image.png", "image_web": "image.webp", "thumb": "thumb.webp",
                      "mp4": "anim.mp4", "diversity": diversity},
            "timings": {"render_s": round(result.seconds, 3), "tile_units": tile_units, "steps": result.steps,
                        "device": device, "host": socket.gethostname()},
            "created": now(),
        }

    return fill
