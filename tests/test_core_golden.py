"""Golden renders: a few units under every kind of setting, at fixed seeds, keep their pixels, frames and
activation history, on any CPU.

The cases render in double precision in a process of their own (`golden_render.py` says why) and are
compared with `golden/reference.npz` within tolerances chosen from measurement (2026-12-02, this machine):
across six kernel settings (native, one thread, oneDNN AVX2 / AVX512 / SSE4.1, ATen default / AVX2) the
difference was 0 levels; the smallest deliberate change, the learning rate x 1.01, moved every case by
2.6-63 levels of mean image difference, 1.2-34 of mean frame difference and 2e-2-0.5 of relative history;
dropping one transform moved them more (8.8-63 levels). The tolerances sit 25x or more under those.
A change that alters pixels is deliberate: bump featvis_core.RENDERER_VERSION (which re-renders every
cached unit) and record a new reference with `python tests/golden_render.py --record`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from golden_render import CASES, REFERENCE

SCRIPT = Path(__file__).with_name("golden_render.py")
OTHER_KERNELS = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "default"}


@dataclass(frozen=True)
class Tolerance:
    """How far a case may move: 8-bit levels for images and frames, relative to the largest activation for
    the history (rounding at a level boundary may flip one level of a few pixels)."""

    mean_levels: float = 0.05
    max_levels: float = 1.0
    history: float = 1e-6


def rendered(tmp: Path, variant: str = "none", env: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """The golden cases rendered by a fresh process (kernel switches are read when torch loads)."""
    out = tmp / f"{variant}-{'-'.join(sorted((env or {}).values())) or 'native'}.npz"
    subprocess.run([sys.executable, str(SCRIPT), str(out), "--variant", variant], check=True,
                   env={**os.environ, **(env or {})}, timeout=600)
    return dict(np.load(out))


def departures(reference: dict, arrays: dict, tolerance: Tolerance = Tolerance()) -> dict[str, str]:
    """Case -> what moved beyond `tolerance` (cases within it are absent)."""
    out = {}
    for case in CASES:
        keys = sorted(k for k in reference if k.startswith(case + "/"))
        if keys != sorted(k for k in arrays if k.startswith(case + "/")):
            out[case] = "different units or images"
            continue
        why = []
        for key in keys:
            ref, new = reference[key].astype(np.float64), arrays[key].astype(np.float64)
            if ref.shape != new.shape:
                why.append(f"{key}: shape {new.shape} != {ref.shape}")
            elif key.endswith("history"):
                moved = np.abs(new - ref).max(initial=0) / max(np.abs(ref).max(initial=0), 1e-12)
                if not moved <= tolerance.history:
                    why.append(f"{key}: {moved:.2e} of the activation")
            else:
                mean, most = np.abs(new - ref).mean(), np.abs(new - ref).max(initial=0)
                if not (mean <= tolerance.mean_levels and most <= tolerance.max_levels):
                    why.append(f"{key}: mean {mean:.3f}, max {most:.0f} levels")
        if why:
            out[case] = "; ".join(why[:3])
    return out


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    return dict(np.load(REFERENCE))


@pytest.fixture(scope="module")
def native(tmp_path_factory) -> dict[str, np.ndarray]:
    return rendered(tmp_path_factory.mktemp("golden"))


@pytest.mark.parametrize("case", list(CASES))
def test_render_keeps_its_pixels(reference, native, case):
    assert case not in departures(reference, native), (
        f"{case}: rendered pixels changed: {departures(reference, native)[case]}; if deliberate, bump "
        "RENDERER_VERSION and record a new reference with `python tests/golden_render.py --record`")


def test_other_cpu_kernels_render_the_same(reference, tmp_path):
    """What a user's machine with other kernels gets: oneDNN limited to AVX2, ATen's portable code."""
    assert departures(reference, rendered(tmp_path, env=OTHER_KERNELS)) == {}


@pytest.mark.parametrize("variant", ["lr", "drop"])
def test_a_small_deliberate_change_is_caught_in_every_case(reference, tmp_path, variant):
    caught = departures(reference, rendered(tmp_path, variant))
    assert sorted(caught) == sorted(CASES), f"{variant} went unnoticed in {sorted(set(CASES) - set(caught))}"
