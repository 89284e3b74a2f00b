"""Transformation robustness: random per-image transforms of the model's *input*.

An image that only works pixel-perfectly aligned is noise; one that survives small shifts, zooms, turns
and colour changes shows a feature. Every image of the batch gets its own draw (peers draw once per
batch, which couples the units that share it).

Geometry is composed into one affine matrix per image, so pad, jitter, scale, rotate and jitter again cost
a single `grid_sample` for the whole batch. Colour jitter is one 3x3 matrix per image plus contrast. The
random numbers for a whole run are drawn up front from each image's own generator (`draws`), so at step
*t* a transform only indexes a tensor: no host round trip, and image *i*'s augmentations do not depend on
its batch mates. The transformed batch feeds the model only; it is never written back into the image
(seed 000's "note on gradient propagation").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from .param import noise

_GREY = torch.tensor([0.299, 0.587, 0.114])
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
DRAWS = 12  # uniforms per view and step: jitter x/y, scale, angle, jitter x/y, b, c, s, h, crop x/y
MIN_VIEW = 32  # px: the smallest whole view the model is shown


@dataclass(frozen=True)
class Augment:
    """Random transforms applied before each forward pass (all optional; zero disables one).

    pad: pixels of `fill` added on each side, so jitter and rotation do not show the border;
    jitter / jitter_after: maximum shift in pixels before and after scale and rotation (Lucid: 8, 4);
    scale: zoom range; rotate: maximum angle in degrees;
    brightness, contrast, saturation: maximum relative change (0.02 -> factor 0.98..1.02); hue: turns;
    output: resample the model input to this many pixels (Lucent feeds 224 px whatever the image size);
    zoom: without `output`, resample the model input to zoom x the padded canvas (so the magnification,
    not the pixel count, stays the same when the image size changes);
    copies: augmented views of each image per step (MACO averages several crops);
    crop: the model sees a random `crop` x `crop` window of its input instead of all of it, at the same
    magnification: fewer pixels per step while features keep their scale (render's coarse phase).
    """

    pad: int = 12
    jitter: int = 8
    scale: tuple[float, float] = (0.9, 1.1)
    rotate: float = 10.0
    jitter_after: int = 4
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    fill: float = 0.5
    output: int | None = None
    copies: int = 1
    zoom: float = 1.0
    crop: int | None = None

    def view_size(self, size: int) -> int:
        """Side of the whole transformed view of an image of `size` px (before any crop). Never under
        MIN_VIEW: an ImageNet network's five stride-2 stages need 32 px to keep a pixel (the first stage
        of a small, unpadded upscaling schedule would be smaller)."""
        return self.output or max(MIN_VIEW, round((size + 2 * self.pad) * self.zoom))

    def model_size(self, size: int) -> int:
        """Side of the model input for an image of `size` px."""
        view = self.view_size(size)
        return min(self.crop, view) if self.crop else view


def draws(generators: Sequence[torch.Generator], steps: int, copies: int, device=None) -> torch.Tensor:
    """Uniform numbers for every step and view of every image: (steps, B * copies, DRAWS)."""
    uniform = noise((steps, copies, DRAWS), generators, "uniform")  # (B, steps, copies, DRAWS)
    return uniform.permute(1, 0, 2, 3).reshape(steps, -1, DRAWS).to(device)


def _between(u: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * u


def affine_theta(u: torch.Tensor, size: int, aug: Augment) -> torch.Tensor:
    """(N, 2, 3) sampling matrices in `affine_grid`'s normalised coordinates.

    Content is padded, shifted by t1, zoomed by s, turned by a, shifted by t2. Sampling needs the
    inverse map: p_in = R(-a) (p_out - t2) / s - t1, in pixels from the centre, then rescaled from the
    output canvas (size + 2 pad) to the input's [-1, 1] range."""
    canvas = size + 2 * aug.pad
    t1 = _between(u[:, 0:2], -aug.jitter, aug.jitter)
    zoom = _between(u[:, 2], *aug.scale)
    angle = _between(u[:, 3], -aug.rotate, aug.rotate) * (math.pi / 180)
    t2 = _between(u[:, 4:6], -aug.jitter_after, aug.jitter_after)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    inverse = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)  # R(-a)/s
    shift = -(inverse @ t2.unsqueeze(-1)).squeeze(-1) - t1
    linear = inverse * (canvas / size)
    offset = shift * (2.0 / size)
    view, out = aug.view_size(size), aug.model_size(size)
    if out < view:  # a window of the view: shrink the grid, place it at random (normalised coordinates)
        part = out / view
        window = _between(u[:, 10:12], part - 1, 1 - part)
        offset = offset + (linear @ window.unsqueeze(-1)).squeeze(-1)
        linear = linear * part
    return torch.cat([linear, offset.unsqueeze(-1)], dim=-1)


def colour_matrices(u: torch.Tensor, aug: Augment) -> torch.Tensor:
    """(N, 3, 3) per-image brightness x saturation x hue matrices."""
    n, device = u.shape[0], u.device
    eye = torch.eye(3, device=device).expand(n, 3, 3)
    bright = _between(u[:, 6], 1 - aug.brightness, 1 + aug.brightness)
    sat = _between(u[:, 8], 1 - aug.saturation, 1 + aug.saturation)
    grey = _GREY.to(device)
    saturation = sat[:, None, None] * eye + (1 - sat)[:, None, None] * grey.expand(3, 3)
    turn = _between(u[:, 9], -aug.hue, aug.hue) * (2 * math.pi)
    yiq = _YIQ.to(device)
    rotation = torch.zeros(n, 3, 3, device=device)
    rotation[:, 0, 0] = 1
    rotation[:, 1, 1] = rotation[:, 2, 2] = torch.cos(turn)
    rotation[:, 1, 2], rotation[:, 2, 1] = -torch.sin(turn), torch.sin(turn)
    hue = torch.linalg.inv(yiq) @ rotation @ yiq
    return bright[:, None, None] * saturation @ hue


def augment(images: torch.Tensor, u: torch.Tensor, aug: Augment, side: int | None = None) -> torch.Tensor:
    """Transform each of the B images `aug.copies` times with its own draws `u` (B * copies, DRAWS).
    `side`: sample the result at this many pixels whatever the view's size (a fixed-size model: the same
    window, more samples). Colour jitter is for RGB; other channel counts get brightness and contrast."""
    if aug.copies > 1:
        images = images.repeat_interleave(aug.copies, dim=0)
    n, channels, size, _ = images.shape
    if channels == 3 and (aug.brightness or aug.saturation or aug.hue):
        images = torch.einsum("nij,njhw->nihw", colour_matrices(u, aug).to(images.dtype), images)
    elif aug.brightness:
        images = images * _between(u[:, 6], 1 - aug.brightness, 1 + aug.brightness).to(images.dtype)[:, None, None, None]
    if aug.contrast:
        factor = _between(u[:, 7], 1 - aug.contrast, 1 + aug.contrast).to(images.dtype)[:, None, None, None]
        if channels == 3:
            mean = torch.einsum("c,nchw->n", _GREY.to(images), images)[:, None, None, None] / (size * size)
        else:
            mean = images.mean(dim=(1, 2, 3), keepdim=True)
        images = factor * images + (1 - factor) * mean
    geometric = aug.pad or aug.jitter or aug.jitter_after or aug.rotate or aug.scale != (1.0, 1.0)
    out = aug.model_size(size)
    if not geometric and out == size and side in (None, size):
        return images
    theta = affine_theta(u, size, aug).to(images.dtype)
    out = side or out
    grid = F.affine_grid(theta, [n, channels, out, out], align_corners=False)
    return F.grid_sample(images - aug.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + aug.fill


def gaussian_blur(images: torch.Tensor, sigma: float, kernel: int | None = None) -> torch.Tensor:
    """Separable Gaussian blur with reflected borders (kernel defaults to 2*ceil(3 sigma)+1)."""
    if sigma <= 0:
        return images
    kernel = kernel or 2 * math.ceil(3 * sigma) + 1
    from torchvision.transforms.v2.functional import gaussian_blur as blur

    return blur(images, [kernel, kernel], [sigma, sigma])
