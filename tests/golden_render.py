"""Render the golden cases in double precision, in a process of their own, and save their arrays.

Why double precision: in fp32 the same render differs between CPUs, because oneDNN and ATen pick kernels
by CPU model and their rounding (~1e-7) is amplified by the optimisation (measured on this machine: up to
56 of 255 levels of mean pixel difference under `ATEN_CPU_CAPABILITY=default`, as much as a 1 % learning-
rate change). In fp64 the rounding starts at ~1e-16 and stays far below what any real change moves: native,
`OMP_NUM_THREADS=1`, `ONEDNN_MAX_CPU_ISA=AVX2`/`SSE41`, `ATEN_CPU_CAPABILITY=default`/`avx2` gave the same
8-bit pixels. Why a process of its own: the default dtype must be set before featvis_core builds its
constant tensors at import, and the kernel switches are read when torch loads.

    python tests/golden_render.py OUT.npz                 # the cases as they are
    python tests/golden_render.py OUT.npz --variant lr    # learning rate x 1.01 (must be caught)
    python tests/golden_render.py --record                # rewrite tests/golden/reference.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REFERENCE = Path(__file__).parent / "golden" / "reference.npz"

# name -> (selectors, preset, overrides); small sizes and few steps, every code path of the loop
CASES = {
    "fft-crop-kinds": (["blocks.4:1,!2,3@,4@1/2,dream"], "lucid-crop",
                       {"size": 40, "steps": 12, "crop": 24, "augment": {"output": 56}, "frames": 4}),
    "pixel-blur-l2": (["blocks.4:5"], "seed-000", {"size": 40, "steps": 12, "frames": 3}),
    "maco-copies": (["logits:hen"], "maco", {"size": 48, "steps": 6, "augment": {"output": 48, "copies": 2}, "frames": 3}),
    "upscale-regularisers": (["blocks.10:7"], "fast",
                             {"schedule": {"start": 32, "every": 4, "factor": 1.3, "stages": 3, "blur": 0.8},
                              "tv": 1e-4, "l1": 1e-5, "input_blur": 0.5, "augment": {"zoom": 1.0}, "frames": 5}),
    "diversity-early-stop": (["blocks.4:6"], "fast", {"size": 32, "steps": 32, "diversity": 2, "early_stop": 4,
                                                      "augment": {"zoom": 1.0}, "frames": 4}),
}
VARIANTS = ("none", "lr", "drop")  # drop: one transform dropped (rotation, or jitter where nothing rotates)


def case_config(preset_name: str, overrides: dict, variant: str):
    """The case's RenderConfig, in fp32 arithmetic settings (the dtype itself comes from the process)."""
    import copy

    from featvis_core import preset

    overrides = copy.deepcopy(overrides)
    if variant == "lr":
        overrides["lr"] = preset(preset_name).lr * 1.01
    if variant == "drop":
        dropped = "rotate" if preset(preset_name, **overrides).augment.rotate else "jitter"
        overrides.setdefault("augment", {})[dropped] = 0
    return preset(preset_name, precision="fp32", **overrides)


def render_cases(variant: str = "none") -> dict:
    """Every case's 8-bit images, animation frames and activation history, keyed `case/unit/what`."""
    import numpy as np
    import torch

    if "featvis_core" in sys.modules:
        raise RuntimeError("render the golden cases in a fresh process: featvis_core was imported in fp32")
    torch.set_default_dtype(torch.float64)
    from featvis_core import load_model, render
    from featvis_core.units import LOGITS, parse_selector

    model = load_model("efficientnet_lite0")
    model.module.double()
    arrays = {}
    for name, (selectors, preset_name, overrides) in CASES.items():
        units = []
        for selector in selectors:
            layer = selector.rpartition(":")[0]
            count = 1000 if layer == LOGITS else model.layer(layer).channels
            units += parse_selector(selector, count, model.class_index)
        for i, result in enumerate(render(model, units, case_config(preset_name, overrides, variant))):
            images = [result.image, *result.extra]
            arrays[f"{name}/{i}/images"] = np.stack([(im.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
                                                    for im in images])
            arrays[f"{name}/{i}/frames"] = result.frames.numpy()
            arrays[f"{name}/{i}/history"] = np.asarray(result.history, dtype=np.float64)
    return arrays


def main(argv: list[str] | None = None) -> None:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path)
    parser.add_argument("--variant", choices=VARIANTS, default="none")
    parser.add_argument("--record", action="store_true", help=f"write {REFERENCE}")
    args = parser.parse_args(argv)
    out = REFERENCE if args.record else args.out
    if out is None:
        parser.error("give OUT.npz or --record")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **render_cases(args.variant))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
