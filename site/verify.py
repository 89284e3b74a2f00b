"""Turn a unit the manifest calls done into a published one, or say why not.

The checking itself (layout, containment, meta.json format, content key, every file's size and sha256) is
the store format's own `check_unit` (featvis_pipeline.storeformat), the same one `featvis verify` and
`featvis run` use, so the site and the pipeline always agree on what is intact. A unit failing any check is
marked ``corrupt`` (shown as pending, never published); the next ``featvis run`` re-renders it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from featvis_pipeline.storeformat import DIVERSITY, OPTIONAL_ROLES, REQUIRED_ROLES, check_unit
from featvis_site.atlas import Activation, StoredFile, Unit

#: points kept of a unit's activation history: plenty for a 320 px chart, small in JSON.
HISTORY_POINTS = 96
#: roles the site publishes (the lossless image.png stays in the store)
PUBLISHED = ("image_web", "thumb", *OPTIONAL_ROLES)


def downsample(values: Iterable[Any], points: int = HISTORY_POINTS) -> tuple[float | None, ...]:
    """Keep at most ``points`` values, always the first and the last, rounded to 4 significant digits.

    Non-numeric or non-finite values become None so the chart can skip them (JSON has no NaN).
    """
    seq = list(values)
    if len(seq) > points > 1:
        last = len(seq) - 1
        seq = [seq[round(i * last / (points - 1))] for i in range(points)]
    return tuple(_num(v) if _num(v) is None else float(f"{v:.4g}") for v in seq)


def _num(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def verify_unit(unit: Unit, root: Path) -> Unit:
    """Check a unit the manifest calls done; on any problem mark it ``corrupt`` (shown as pending)."""
    if unit.state != "done":
        return unit
    check = check_unit(root, unit.path, unit.key)
    meta = check.meta
    if check.problems or meta is None:
        unit.state, unit.reason = "corrupt", "; ".join(check.problems) or "meta.json is missing"
        return unit
    if meta.status != "done":
        unit.state, unit.reason = "failed", meta.error or "render failed"
        return unit

    def stored(role: str, index: int = 0) -> StoredFile:
        entry, path = check.files[role][index]
        return StoredFile(role, path, path.relative_to(root).as_posix(), entry.bytes, entry.sha256)

    unit.files = {role: stored(role) for role in (*REQUIRED_ROLES, *OPTIONAL_ROLES) if role in check.files
                  and (role in PUBLISHED)}
    unit.diversity = tuple(stored(DIVERSITY, i) for i in range(len(check.files.get(DIVERSITY, []))))
    act = meta.activation
    unit.activation = Activation(
        start=_num(act.start), final=_num(act.final), best=_num(act.best), steps=len(act.history),
        history=downsample(act.history),
    )
    unit.scores = {k: v for k, v in meta.scores.items() if _num(v) is not None}
    unit.timings = dict(meta.timings)
    unit.size = (meta.size[0], meta.size[1]) if meta.size else None
    unit.created = meta.created
    if meta.label:
        unit.label = meta.label
    return unit
