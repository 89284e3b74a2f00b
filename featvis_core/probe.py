"""Probe a model once: which input sizes it accepts and how each layer lays out its output.

A renderer must know two things that a model's code does not declare:

* **Input size.** ViTs accept only their own size (a smaller image fails inside `forward`), so every view
  the renderer shows them (crop windows, small stages of a growing schedule, augmentation copies) must be
  resampled to that size. Models that accept any size keep the cheap small windows. One no-grad forward
  at a smaller size tells them apart.
* **Layout of each layer's output.** Convolutions give `[B, C, H, W]`; Swin stages give channels-last
  `[B, H, W, C]`; ViT blocks give tokens `[B, N, D]` (N = grid² patches, plus a class token in front
  when N = 1 + grid²). A 4-D shape alone cannot tell NCHW from NHWC, so models that accept two sizes are
  probed at both: the axes that scale with the input are the spatial ones. A model with one fixed size is
  read from its shape (`H == W` at dims 2, 3 is NCHW; at dims 1, 2 with another last dim, NHWC).

Every layout is turned into `[B, C, H, W]` by `Layout.as_map` before a unit is scored, so the objectives
(channel mean, neuron at x/y, direction, DeepDream) are written once. For NCHW layers that is the
identity: convolutional models see exactly the tensors they did before.
"""

from __future__ import annotations

import math
import re
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from .errors import FeatvisError

if TYPE_CHECKING:
    from .models import Classifier

NCHW, NHWC, TOKENS = "nchw", "nhwc", "tokens"


@dataclass(frozen=True)
class Layout:
    """How one layer's output holds its channels. `prefix`: tokens before the patch grid (1 for a ViT's
    class token), tokens layout only."""

    kind: str = NCHW
    prefix: int = 0

    def as_map(self, x: torch.Tensor) -> torch.Tensor:
        """The output as `[B, C, H, W]`: NCHW as is, NHWC permuted, patch tokens on their square grid
        (the class token left out: channel means and neurons are over the patches)."""
        if self.kind == NCHW:
            return x
        if self.kind == NHWC:
            return x.permute(0, 3, 1, 2)
        patches = x[:, self.prefix:, :]
        side = math.isqrt(patches.shape[1])
        if side * side != patches.shape[1]:
            raise ValueError(f"{patches.shape[1]} patch tokens do not form a square grid")
        return patches.transpose(1, 2).reshape(x.shape[0], x.shape[2], side, side)

    def token(self, x: torch.Tensor) -> torch.Tensor:
        """The class token's features `[B, D]` (tokens layouts with a class token only)."""
        if self.kind != TOKENS or not self.prefix:
            raise ValueError("this layer has no class token")
        return x[:, 0, :]

    @property
    def describe(self) -> str:
        if self.kind == TOKENS:
            return "tokens+cls" if self.prefix else "tokens"
        return self.kind


@dataclass(frozen=True)
class Shape:
    """One module's output at the probed size, read in its layout."""

    layout: Layout
    channels: int
    height: int
    width: int


def _plumbing(module: nn.Module) -> bool:
    """Padding, identity, dropout, flatten: modules that only move data, never worth an atlas page."""
    return re.fullmatch(r"\w*Pad[123]d|Identity|Dropout\w*|Flatten|StochasticDepth", type(module).__name__) is not None


def probe_input(channels: int, size: int, device: torch.device) -> torch.Tensor:
    return torch.zeros(1, channels, size, size, device=device)


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters(), torch.zeros(())).device


def _outputs(model: "Classifier", size: int, depth: int) -> dict[str, list[tuple[int, ...]]]:
    """Every module's output shapes (one per call) in one no-grad forward of a blank image at `size`."""
    calls: dict[str, list[tuple[int, ...]]] = {}
    handles = []
    for path, module in model.module.named_modules():
        if path and path.count(".") < depth and not _plumbing(module):
            def hook(_m, _i, out, path=path):
                calls.setdefault(path, []).append(tuple(out.shape) if isinstance(out, torch.Tensor) else ())
            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.module(probe_input(model.channels, size, _device(model.module)))
    except (Exception, SystemExit) as error:  # noqa: BLE001 - a model that fails at this size is a user error
        raise FeatvisError(f"model {model.name!r} cannot run at {size} px: {type(error).__name__}: "
                           f"{_first_line(error)}") from None
    finally:
        for handle in handles:
            handle.remove()
    return calls


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else ""


def other_size(size: int) -> int:
    """A second probe size that differs from `size` on every layer's grid (a multiple of 32 when the
    model's size allows, so that stride-32 networks still have a pixel)."""
    if size >= 96:
        return max(64, (size * 3 // 4) // 32 * 32)
    return max(8, size // 2)


def accepts_other_sizes(model: "Classifier") -> bool:
    """Does the model run on an input smaller than its own size? (One no-grad forward; any failure means no.)"""
    try:
        with torch.no_grad():
            out = model.module(probe_input(model.channels, other_size(model.input_size), _device(model.module)))
    except (Exception, SystemExit):  # noqa: BLE001 - failing is the answer
        return False
    return isinstance(out, torch.Tensor)


def _from_shape(shape: tuple[int, ...]) -> Shape | None:
    """Layout of one output at a fixed input size, from its shape alone."""
    if len(shape) == 3:
        tokens, dim = shape[1], shape[2]
        for prefix in (0, 1):
            side = math.isqrt(max(tokens - prefix, 0))
            if side and side * side == tokens - prefix:
                return Shape(Layout(TOKENS, prefix), dim, side, side)
        return None
    if len(shape) != 4:
        return None
    if shape[2] == shape[3]:
        return Shape(Layout(NCHW), shape[1], shape[2], shape[3])
    if shape[1] == shape[2]:
        return Shape(Layout(NHWC), shape[3], shape[1], shape[2])
    return None


def _from_two(shape: tuple[int, ...], other: tuple[int, ...] | None) -> Shape | None:
    """Layout of one output from its shapes at two input sizes: the axes that change are spatial."""
    if other is None or len(other) != len(shape):
        return _from_shape(shape) if other is None else None
    scales = tuple(a != b for a, b in zip(shape, other))
    if len(shape) == 4:
        if scales[1:] == (True, True, False):
            return Shape(Layout(NHWC), shape[3], shape[1], shape[2])
        if scales[1] and not scales[3]:
            return None  # windows or partitions, not a feature map
        return Shape(Layout(NCHW), shape[1], shape[2], shape[3])  # as before: 4-D outputs read as NCHW
    if len(shape) == 3 and scales[1:] == (True, False):
        return _from_shape(shape)
    return None


_CACHE: "weakref.WeakKeyDictionary[Classifier, dict[tuple[int, int], dict[str, Shape]]]" = weakref.WeakKeyDictionary()


def layer_shapes(model: "Classifier", size: int, depth: int) -> dict[str, Shape]:
    """Module path -> Shape for every module up to `depth` dots deep that runs once per forward and whose
    output is a feature map or a token grid, in forward order. Cached per model, size and depth."""
    cached = _CACHE.setdefault(model, {})
    if (size, depth) in cached:
        return cached[(size, depth)]
    first = _outputs(model, size, depth)
    second = None
    if not model.fixed_size:
        try:
            second = _outputs(model, other_size(size), depth)
        except FeatvisError:
            second = None
    found: dict[str, Shape] = {}
    for path, shapes in first.items():
        if len(shapes) != 1 or len(shapes[0]) not in (3, 4):
            continue
        other = second.get(path, [None])[0] if second is not None else None
        shape = _from_two(shapes[0], other) if second is not None else _from_shape(shapes[0])
        if shape is not None:
            found[path] = shape
    cached[(size, depth)] = found
    return found


def size_note(model: "Classifier") -> str:
    """The one line that says what the size probe found."""
    if model.fixed_size:
        return (f"{model.name} accepts only {model.input_size} px inputs: every view (crop windows, growing "
                f"stages, augmentation copies) is resampled to {model.input_size} px before the forward")
    return f"{model.name} accepts other input sizes than {model.input_size} px: views keep their own size"
