"""Golden renders: a few units under every kind of setting, at fixed seeds, must keep their exact bytes.

A restructuring of the renderer must not change a single pixel; a change that does is deliberate, bumps
featvis_core.RENDERER_VERSION (which re-renders every cached unit) and records new digests here with
`python tests/test_core_golden.py`. fp32 keeps the digests independent of bf16 kernel choices.
"""

from __future__ import annotations

import hashlib
import json
import sys

import pytest

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
DIGESTS = {  # recorded with `python tests/test_core_golden.py` (RENDERER_VERSION 3)
    "fft-crop-kinds": "583a5701e1fcfd95",
    "pixel-blur-l2": "c951b80a37aedafb",
    "maco-copies": "9770bcc51c32f658",
    "upscale-regularisers": "f7400ec3cd582379",
    "diversity-early-stop": "e8bb38212d4122c7",
}


def digests(model) -> dict[str, str]:
    """sha256 over each case's images (uint8 PNG pixels), frames and activation history."""
    import torch

    from featvis_core import preset, render
    from featvis_core.units import LOGITS, parse_selector

    out = {}
    for name, (selectors, preset_name, overrides) in CASES.items():
        config = preset(preset_name, precision="fp32", **overrides)
        units = []
        for selector in selectors:
            layer = selector.rpartition(":")[0]
            count = 1000 if layer == LOGITS else model.layer(layer).channels
            units += parse_selector(selector, count, model.class_index)
        digest = hashlib.sha256()
        for result in render(model, units, config):
            for image in [result.image, *result.extra]:
                digest.update((image.clamp(0, 1) * 255).round().to(torch.uint8).numpy().tobytes())
            digest.update(result.frames.numpy().tobytes())
            digest.update(json.dumps([round(v, 4) for v in result.history]).encode())
        out[name] = digest.hexdigest()[:16]
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_render_keeps_its_exact_pixels(lite0, name, golden=[]):
    if not golden:
        golden.append(digests(lite0))
    assert golden[0][name] == DIGESTS[name], (
        f"{name}: rendered pixels changed; if deliberate, bump RENDERER_VERSION and re-record the digests")


if __name__ == "__main__":
    sys.path.insert(0, ".")
    from featvis_core import load_model

    print(json.dumps(digests(load_model("efficientnet_lite0")), indent=4))
