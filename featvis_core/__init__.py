"""featvis_core: a batched feature-visualization renderer in pure PyTorch.

    from featvis_core import load_model, preset, render
    model = load_model("efficientnet_lite0")
    results = render(model, model.units("blocks.10:0-7"), preset("coarse-to-fine"))  # one batch, one layer
    results[0].image                                                                  # (3, H, W) in [0, 1]
    render(model, model.units("logits:hen,pelican"), preset("fast"))                  # a quick preview

Units combine like Lucid's objectives: `channel("blocks.10", 3) - 0.5 * channel("blocks.10", 7)`.
"""

from .config import DEFAULT_PRESET, PRESETS, RenderConfig, preset
from .errors import FeatvisError
from .models import Classifier, LayerInfo, load_model
from .render import UnitRender, render
from .schedules import Upscale
from .transforms import Augment
from .units import Kind, Unit, channel, parse_selector

__version__ = "0.1.0"
RENDERER_VERSION = "3"  # bump when a change alters rendered pixels: invalidates every cached unit (3: 12 draws per step, one-sided padding folded)

__all__ = [
    "Augment", "Classifier", "DEFAULT_PRESET", "FeatvisError", "Kind", "LayerInfo", "PRESETS", "RENDERER_VERSION",
    "RenderConfig", "Unit", "UnitRender", "Upscale", "channel", "load_model", "parse_selector", "preset", "render",
]
