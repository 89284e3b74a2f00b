"""Per-unit JSON the lightbox fetches on demand (``unit.json`` beside the unit's published media).

One small file per unit keeps every page light (a 2,048-channel layer page carries no per-unit numbers)
and costs one tiny request when a unit is opened. URLs inside are relative to the JSON file itself.
"""

from __future__ import annotations

import math
import posixpath
from typing import Any

from featvis_site.atlas import Model, Unit
from featvis_site.media import UnitAssets


def _local(path: str | None, folder: str) -> str | None:
    return posixpath.relpath(path, folder) if path else None


def finite(value: Any) -> Any:
    """`value` with every NaN and infinity (a store's meta.json may hold them) as None: JSON has neither, and
    the browser's JSON.parse refuses the whole file over one."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def unit_record(model: Model, unit: Unit, assets: UnitAssets) -> dict[str, Any]:
    """Everything the lightbox shows about one unit."""
    act = unit.activation
    timings = {k: unit.timings[k] for k in ("render_s", "steps", "device", "tile_units") if k in unit.timings}
    return {
        "name": unit.label,
        "unit": unit.unit,
        "kind": unit.kind,
        "index": unit.index,
        "layer": unit.layer,
        "model": model.name,
        "job": unit.job,
        "key": unit.key,
        "size": list(unit.size) if unit.size else None,
        "created": unit.created,
        "image": _local(assets.image, assets.folder),
        "poster": _local(assets.thumb, assets.folder),
        "mp4": _local(assets.mp4, assets.folder),
        "diversity": [_local(p, assets.folder) for p in assets.diversity],
        "activation": {
            "start": act.start if act else None,
            "final": act.final if act else None,
            "best": act.best if act else None,
            "steps": act.steps if act else 0,
        },
        "history": list(act.history) if act else [],
        "scores": unit.scores,
        "timings": timings,
    }
