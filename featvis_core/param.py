"""Image parameterisations: what the optimiser actually changes.

Each one maps its parameters to a batch of images in [0, 1] (RGB, or the model's own channel count) and can go back and forth to a *linear
image*, the spatial signal just before the colour mixing and the squashing nonlinearity. The linear image
is what upscaling resizes and what periodic blur smooths, so both work the same for every
parameterisation (the spectrum of an upscaled fft image is re-derived from its resized linear image).

* `PixelImage`: RGB pixels, initialised to seed 000's near-grey noise.
* `FourierImage`: Lucid's decorrelated-colour spectrum, whose 1/f scaling preconditions the optimiser
  towards natural-image statistics.
* `MacoImage`: Fel et al.'s magnitude-constrained parameterisation: only the phase is optimised, the
  magnitude stays a natural (here 1/f) spectrum, which keeps the image's energy where photos have it.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# Square root of ImageNet's colour correlation (Lucid), normalised by its largest column norm.
_COLOUR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOUR_MIX = _COLOUR_SQRT / _COLOUR_SQRT.norm(dim=0).max()


def noise(shape: Sequence[int], generators: Sequence[torch.Generator], kind: str = "normal") -> torch.Tensor:
    """One independent draw of `shape` per image, each from its own generator, so an image's start
    does not depend on which other units share its batch."""
    draw = torch.randn if kind == "normal" else torch.rand
    return torch.stack([draw(tuple(shape), generator=g) for g in generators])


def as_rgb(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) or (C, H, W) images as RGB for people: RGB as is, one channel as grayscale, more than
    three as their first three, two as grayscale of the first (the model sees all of them)."""
    channels = images.shape[-3]
    if channels == 3:
        return images
    if channels > 3:
        return images[..., :3, :, :]
    return images[..., :1, :, :].expand(*images.shape[:-3], 3, *images.shape[-2:])


def shown_as(channels: int) -> str:
    """How `as_rgb` shows images of `channels` channels, in words (meta.json and model cards say it)."""
    if channels in (1, 3):
        return "rgb" if channels == 3 else "grayscale"
    return f"first three of {channels} channels" if channels > 3 else f"channel 0 of {channels} as grayscale"


def mix_colours(linear: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Map decorrelated channels to RGB (or back): a 3x3 matrix applied to every pixel."""
    matrix = COLOUR_MIX.to(linear.device, linear.dtype)
    if inverse:
        matrix = torch.linalg.inv(matrix)
    return torch.einsum("ij,bjhw->bihw", matrix, linear)


def spectrum_scale(height: int, width: int, decay: float = 1.0, device=None) -> torch.Tensor:
    """1 / |f|**decay over the rfft2 grid, floored at 1/max(h, w): the natural-image amplitude law."""
    fy = torch.fft.fftfreq(height, device=device)[:, None]
    fx = torch.fft.rfftfreq(width, device=device)[None, :]
    freqs = (fx * fx + fy * fy).sqrt()
    return 1.0 / freqs.clamp(min=1.0 / max(height, width)) ** decay


def resize_linear(linear: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(linear, size=(size, size), mode="bicubic", align_corners=False)


class ImageParam(nn.Module):
    """Base class: `forward()` gives images in [0, 1]; `linear()`/`set_linear()` expose the linear image."""

    size: int

    def linear(self) -> torch.Tensor:
        raise NotImplementedError

    def set_linear(self, linear: torch.Tensor) -> None:
        raise NotImplementedError

    def resized(self, size: int) -> "ImageParam":
        """A new parameterisation of the same images at `size` px (the optimiser must be rebuilt)."""
        raise NotImplementedError

    def project(self) -> None:
        """Called after each optimiser step to keep parameters valid (no-op by default)."""


class PixelImage(ImageParam):
    """Plain RGB pixels. Seed 000's init (grey ± 0.005) matters: uniform noise in [0, 1] starts the
    optimiser in a high-frequency basin it rarely leaves (seed 001)."""

    def __init__(self, pixels: torch.Tensor):
        super().__init__()
        self.pixels = nn.Parameter(pixels)
        self.size = pixels.shape[-1]

    @classmethod
    def init(cls, generators: Sequence[torch.Generator], size: int, device=None, channels: int = 3) -> "PixelImage":
        start = (noise((channels, size, size), generators, "uniform") - 0.5) * 0.01 + 0.5
        return cls(start.to(device))

    def forward(self) -> torch.Tensor:
        return self.pixels

    def linear(self) -> torch.Tensor:
        return self.pixels.detach()

    def set_linear(self, linear: torch.Tensor) -> None:
        with torch.no_grad():
            self.pixels.copy_(linear)

    def resized(self, size: int) -> "PixelImage":
        return PixelImage(resize_linear(self.linear(), size).clamp(0, 1))

    def project(self) -> None:
        with torch.no_grad():
            self.pixels.clamp_(0, 1)


class FourierImage(ImageParam):
    """Lucid's fft parameterisation: a scaled rfft2 spectrum, decorrelated colours (RGB only: the
    decorrelation is ImageNet's colour statistics), sigmoid. Any channel count."""

    def __init__(self, spectrum: torch.Tensor, size: int, decay: float = 1.0, decorrelate: bool = True):
        super().__init__()
        self.spectrum = nn.Parameter(spectrum)  # (B, C, H, W//2+1, 2) real/imaginary
        self.size, self.decay = size, decay
        self.decorrelate = decorrelate and spectrum.shape[1] == 3
        self.register_buffer("scale", spectrum_scale(size, size, decay, spectrum.device)[..., None])

    @classmethod
    def init(cls, generators, size: int, device=None, decay: float = 1.0, decorrelate: bool = True, channels: int = 3):
        shape = (channels, size, size // 2 + 1, 2)
        return cls((noise(shape, generators) * 0.01).to(device), size, decay, decorrelate)

    def linear(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.scale * self.spectrum)
        return torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho") / 4.0

    def forward(self) -> torch.Tensor:
        linear = self.linear()
        return torch.sigmoid(mix_colours(linear) if self.decorrelate else linear)

    def _spectrum_of(self, linear: torch.Tensor, size: int) -> torch.Tensor:
        scale = spectrum_scale(size, size, self.decay, linear.device)
        spectrum = torch.fft.rfft2(linear * 4.0, norm="ortho") / scale
        return torch.view_as_real(spectrum).contiguous()

    def set_linear(self, linear: torch.Tensor) -> None:
        with torch.no_grad():
            self.spectrum.copy_(self._spectrum_of(linear, self.size))

    def resized(self, size: int) -> "FourierImage":
        linear = resize_linear(self.linear().detach(), size)
        return FourierImage(self._spectrum_of(linear, size), size, self.decay, self.decorrelate)


class MacoImage(ImageParam):
    """Magnitude-constrained: optimise the phase only; the amplitude is a fixed 1/f natural spectrum.
    The image is standardised before colour mixing so its contrast cannot run away."""

    def __init__(self, phase: torch.Tensor, size: int, decay: float = 1.0):
        super().__init__()
        self.phase = nn.Parameter(phase)  # (B, C, H, W//2+1)
        self.size, self.decay = size, decay
        magnitude = spectrum_scale(size, size, decay, phase.device)
        self.register_buffer("magnitude", magnitude / magnitude.norm() * size)

    @classmethod
    def init(cls, generators, size: int, device=None, decay: float = 1.0, channels: int = 3):
        shape = (channels, size, size // 2 + 1)
        return cls(((noise(shape, generators, "uniform") * 2 - 1) * math.pi).to(device), size, decay)

    def linear(self) -> torch.Tensor:
        spectrum = torch.polar(self.magnitude.expand_as(self.phase), self.phase)
        image = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho")
        centred = image - image.mean(dim=(1, 2, 3), keepdim=True)
        return centred / (centred.std(dim=(1, 2, 3), keepdim=True) + 1e-4)

    def forward(self) -> torch.Tensor:
        linear = self.linear()
        return torch.sigmoid(mix_colours(linear) if linear.shape[1] == 3 else linear)

    def set_linear(self, linear: torch.Tensor) -> None:
        with torch.no_grad():
            self.phase.copy_(torch.angle(torch.fft.rfft2(linear, norm="ortho")))

    def resized(self, size: int) -> "MacoImage":
        linear = resize_linear(self.linear().detach(), size)
        return MacoImage(torch.angle(torch.fft.rfft2(linear, norm="ortho")), size, self.decay)


def make_param(kind: str, generators, size: int, device=None, decay: float = 1.0, decorrelate: bool = True,
               channels: int = 3):
    """The parameterisation named `kind` ('pixel', 'fft' or 'maco') for one `channels`-channel image per
    generator."""
    if kind == "pixel":
        return PixelImage.init(generators, size, device, channels)
    if kind == "fft":
        return FourierImage.init(generators, size, device, decay, decorrelate, channels)
    if kind == "maco":
        return MacoImage.init(generators, size, device, decay, channels)
    raise ValueError(f"unknown parameterisation {kind!r}: expected pixel, fft or maco")
