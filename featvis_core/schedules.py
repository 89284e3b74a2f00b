"""Upscaling schedules: the image size over the run.

Upscaling optimises a small image first, where a few pixels encode the low frequencies, then grows it:
large structure forms cheaply and the last stages add detail. Sizes compound with truncation
(``size = int(size * factor)``), which reproduces Graetz's published sizes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import FeatvisError

MAX_SIZE = 2048  # image side in px (Graetz ends at 408, seed 003 at 400)
MAX_STAGES = 64
MAX_SIGMA = 32.0  # Gaussian blur sigma: its kernel is 2 * ceil(3 sigma) + 1 px wide


@dataclass(frozen=True)
class Upscale:
    """Start at `start` px; after every `every` steps grow by `factor` (truncated), for `stages` stages
    or until `until` px (the last size is capped at `until`). `factor == 1` is a constant size."""

    start: int
    every: int
    factor: float = 1.0
    stages: int | None = None
    until: int | None = None
    blur: float = 0.0  # sigma of the blur written into the image after each upscale (0: none)

    def __post_init__(self) -> None:
        if not 8 <= self.start <= MAX_SIZE:
            raise FeatvisError(f"image size must be between 8 and {MAX_SIZE} px, got {self.start}")
        if self.every < 1:
            raise FeatvisError(f"steps must be positive, got {self.every}")
        if not 1 <= self.factor <= 16:
            raise FeatvisError(f"upscale factor must be between 1 and 16, got {self.factor}")
        if self.stages is not None and not 1 <= self.stages <= MAX_STAGES:
            raise FeatvisError(f"upscale stages must be between 1 and {MAX_STAGES}, got {self.stages}")
        if self.until is not None and not 8 <= self.until <= MAX_SIZE:
            raise FeatvisError(f"upscale until must be between 8 and {MAX_SIZE} px, got {self.until}")
        if not 0 <= self.blur <= MAX_SIGMA:
            raise FeatvisError(f"upscale blur must be between 0 and {MAX_SIGMA}, got {self.blur}")
        self.sizes  # noqa: B018 - bounded: raises when the schedule needs too many stages or grows too large

    @property
    def sizes(self) -> list[int]:
        """Image size of each stage."""
        if self.factor == 1 or (self.stages is None and self.until is None):
            return [self.start] * (self.stages or 1)
        sizes = [self.start]
        while True:
            if self.stages is not None and len(sizes) == self.stages:
                return sizes
            if self.until is not None and sizes[-1] >= self.until:
                return sizes
            if len(sizes) == MAX_STAGES:  # e.g. a factor so close to 1 that int() never grows the size
                raise FeatvisError(f"the upscale schedule needs more than {MAX_STAGES} stages to reach {self.until} px")
            grown = int(sizes[-1] * self.factor)
            sizes.append(min(grown, self.until) if self.until else grown)
            if sizes[-1] > MAX_SIZE:
                raise FeatvisError(f"the upscale schedule grows to {sizes[-1]} px, more than {MAX_SIZE} px")

    @property
    def steps(self) -> int:
        return self.every * len(self.sizes)

    @property
    def final(self) -> int:
        return self.sizes[-1]


def constant(size: int, steps: int) -> Upscale:
    """One size throughout (Lucid: 128 px, 512 steps)."""
    return Upscale(start=size, every=steps)


def seed003() -> Upscale:
    """Seed 003: 64 px, x1.1 every 50 steps up to 400 px (20 upscales, 21 sizes), blurred on upscale."""
    return Upscale(start=64, every=50, factor=1.1, until=400, blur=1.0)


def graetz() -> Upscale:
    """Graetz 2019: 56 px, 12 stages x1.2 of 20 steps (56 ... 408), bicubic resize then 5x5 blur."""
    return Upscale(start=56, every=20, factor=1.2, stages=12, blur=1.0)


def grow(size: int, steps: int, factor: float = 1.25, start: float = 0.5) -> Upscale:
    """Coarse to fine on a budget: from half the final `size`, x1.25 per stage up to `size`, the `steps`
    shared evenly by the stages (5 stages for a doubling). Large shapes settle at the small sizes, where a
    step is cheap; the stages at the final size add detail."""
    first = max(8, round(size * start))
    stages = len(Upscale(start=first, every=1, factor=factor, until=size).sizes)
    return Upscale(start=first, every=max(1, steps // stages), factor=factor, until=size)


NAMED = {"constant": constant, "grow": grow, "seed-003": seed003, "graetz": graetz}


def named(name: str, size: int = 128, steps: int = 512) -> Upscale:
    """A schedule by name; `size` (the final size) and `steps` (in all) shape `constant` and `grow`, the
    published `seed-003` and `graetz` schedules are fixed."""
    if name in ("constant", "grow"):
        return NAMED[name](size, steps)
    try:
        return NAMED[name]()
    except KeyError:
        raise FeatvisError(f"unknown schedule {name!r}: expected one of {', '.join(NAMED)}") from None
