"""featvis_core: a batched feature-visualization renderer in pure PyTorch.

    from featvis_core import load_model, parse_units, preset, render
    model = load_model("efficientnet_lite0")
    units = parse_units(model, ["blocks.10:0-7", "logits:hen"])
    results = render(model, units["blocks.10"], preset("fast"))
"""

from .config import PRESETS, RenderConfig, preset
from .errors import FeatvisError
from .models import Classifier, LayerInfo, load_model
from .render import UnitRender, render
from .schedules import Upscale
from .transforms import Augment
from .units import Kind, Unit

__version__ = "0.1.0"
RENDERER_VERSION = "3"  # bump when a change alters rendered pixels: invalidates every cached unit (3: 12 draws per step, one-sided padding folded)

__all__ = [
    "Augment", "Classifier", "FeatvisError", "Kind", "LayerInfo", "PRESETS", "RENDERER_VERSION",
    "RenderConfig", "Unit", "UnitRender", "Upscale", "load_model", "preset", "render",
]
