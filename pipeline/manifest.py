"""The job manifest and the model card: what the site reads (format: STORE.md)."""

from __future__ import annotations

from typing import Any

from featvis_core import Classifier, media
from featvis_core.filters import filter_grid

from .plan import Plan, PlannedUnit
from .store import Store, now
from .storeformat import SCHEMA


class Manifest:
    """Every unit of a job and its state, kept in memory during a run and saved atomically."""

    def __init__(self, plan: Plan, store: Store, pending: list[PlannedUnit]):
        self.plan, self.store = plan, store
        waiting = {u.spec for u in pending}
        self.state = {u.spec: ("pending" if u.spec in waiting else "done") for u in plan.units}
        self.errors: dict[str, str] = {}

    def record(self, rendered: list[str], failed: dict[str, str]) -> None:
        for spec in rendered:
            self.state[spec] = "done"
            self.errors.pop(spec, None)
        for spec, reason in failed.items():
            self.state[spec] = "failed"
            self.errors[spec] = reason

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan
        counts = {state: 0 for state in ("done", "pending", "failed")}
        units = []
        for planned in plan.units:
            state = self.state[planned.spec]
            counts[state] += 1
            unit = planned.unit
            units.append({
                "unit": planned.spec, "layer": unit.layer, "kind": unit.kind.value, "index": unit.index,
                "label": planned.label, "caption": planned.caption, "key": planned.key, "state": state, "path": planned.path,
                "error": self.errors.get(planned.spec),
            })
        return {
            "schema": SCHEMA, "job": plan.job_name, "model": plan.job.model, "preset": plan.job.preset,
            "settings": plan.config.to_dict(), "updated": now(), "counts": counts, "units": units,
        }

    def save(self) -> None:
        self.store.write_manifest(self.plan.job_name, self.to_dict())

    def try_save(self) -> str | None:
        """Save, but a full disk (or another error of the machine) is returned as one line instead of
        raised: a run records every tile it can, and says at the end that the manifest is behind."""
        try:
            self.save()
        except OSError as error:
            return f"the manifest could not be saved ({error.strerror or error})"
        return None


def model_card(plan: Plan) -> dict[str, Any]:
    model = plan.model
    return {
        "schema": SCHEMA,
        "model": plan.job.model,
        "source": model.source,
        "weights": model.fingerprint,
        "input_size": model.input_size,
        "input_channels": model.channels,
        "shown_as": model.display,  # how the gallery's images show those channels
        "fixed_size": model.fixed_size,
        "mean": list(model.mean),
        "std": list(model.std),
        "layers": [{"name": layer.name, "channels": layer.channels, "height": layer.height, "width": layer.width,
                    "layout": layer.layout.describe} for layer in model.layers()],
        "classes": list(model.classes),
    }


def write_model_card(store: Store, plan: Plan) -> None:
    store.write_model_card(plan.model_dir, model_card(plan))


def write_filters(store: Store, model_dir: str, model: Classifier) -> None:
    """filters.png: the first convolution's filters as RGB tiles (needs the real weights, so it is
    written by the first worker that has them)."""
    weights = model.first_conv_weights()
    if weights is None or (store.root / model_dir / "filters.png").exists():
        return
    store.write_file(f"{model_dir}/filters.png", lambda path: media.to_pil(filter_grid(weights)).save(path, format="PNG"))
