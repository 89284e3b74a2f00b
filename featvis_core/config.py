"""The render config: every technique of TECHNIQUES.md as one field, and the named presets.

A config is plain, frozen data so it can be hashed into a unit's content key, written into meta.json and
overridden field by field from flows.yaml or the command line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import FeatvisError
from .schedules import MAX_SIGMA, MAX_SIZE, Upscale, named
from .transforms import Augment

# Bounds on every size, count and step number a config may ask for, so that no setting from flows.yaml or the
# command line can make the renderer allocate terabytes or loop for ever (planning then checks the device).
MAX_STEPS = 100_000  # seed-003 runs 1,050; Lucid 512
MAX_FRAMES = 1_000
MAX_COPIES = 64  # MACO uses 4
MAX_DIVERSITY = 16
MAX_VIEW = 4096  # side of the model's input

LUCID_AUGMENT = Augment(pad=12, jitter=8, scale=(0.9, 1.1), rotate=10.0, jitter_after=4)
SEED000_AUGMENT = Augment(
    pad=0, jitter=0, scale=(0.96, 1.04), rotate=15.0, jitter_after=0,
    brightness=0.02, contrast=0.01, saturation=0.02, hue=0.01,
)


@dataclass(frozen=True)
class RenderConfig:
    """How to render a batch of units. See TECHNIQUES.md for where each number comes from."""

    param: str = "fft"  # pixel | fft | maco
    decorrelate: bool = True  # fft: optimise in decorrelated colour space
    decay: float = 1.0  # fft/maco: spectrum amplitude ~ 1/f**decay
    schedule: str | Upscale = "constant"  # constant | seed-003 | graetz, or any Upscale
    size: int = 128  # constant schedule: image size (other schedules set their own)
    steps: int = 512  # constant schedule: optimisation steps
    optimizer: str = "adam"  # adam | sgd | nadam
    lr: float = 0.05
    augment: Augment = field(default_factory=lambda: LUCID_AUGMENT)
    l1: float = 0.0  # weight of sum |x - l1_centre|
    l1_centre: float = 0.5
    l2: float = 0.0  # weight of sum (x - 0.5)^2
    tv: float = 0.0  # weight of anisotropic total variation
    blur_every: int = 0  # write a Gaussian blur into the image every k steps (0: never)
    blur_sigma: float = 1.5
    input_blur: float = 0.0  # model-input blur, sigma decaying linearly from this to 0
    best: bool = True  # return the image of the best step of the last stage, not the last one
    diversity: int = 1  # images per unit, pushed apart by the Gram-matrix term
    diversity_weight: float = 10.0
    frames: int = 48  # animation frames captured over the run (evenly spaced)
    animation_size: int = 256  # cap on the animation's side in pixels
    crop: int | None = None  # first `crop_share` of steps: the model sees random crop x crop px windows
    crop_share: float = 0.875  # of its input view (same magnification, fewer pixels; see render.py)
    crop_scale: tuple[float, float] | None = None  # zoom range of the crop phase (None: augment.scale)
    early_stop: int = 0  # stop when no image improved its best for this many steps (0: never)
    precision: str = "auto"  # auto (bf16 where the hardware has fast bf16) | fp32 | bf16
    seed: int = 0

    def __post_init__(self) -> None:
        aug = self.augment
        checks = [
            (self.param in ("pixel", "fft", "maco"), f"param must be pixel, fft or maco, not {self.param!r}"),
            (self.optimizer in ("adam", "sgd", "nadam"), f"optimizer must be adam, sgd or nadam, not {self.optimizer!r}"),
            (1 <= self.steps <= MAX_STEPS, f"steps must be positive and at most {MAX_STEPS:,}, got {self.steps}"),
            (8 <= self.size <= MAX_SIZE, f"size must be at least 8 px and at most {MAX_SIZE} px, got {self.size}"),
            (0 < self.lr <= 1e6, f"lr must be positive and at most 1e6, got {self.lr}"),
            (1 <= self.diversity <= MAX_DIVERSITY, f"diversity must be at least 1 and at most {MAX_DIVERSITY}, got {self.diversity}"),
            (self.precision in ("auto", "fp32", "bf16"), f"precision must be auto, fp32 or bf16, not {self.precision!r}"),
            (1 <= self.frames <= MAX_FRAMES, f"frames must be at least 1 and at most {MAX_FRAMES}, got {self.frames}"),
            (16 <= self.animation_size <= MAX_SIZE, f"animation_size must be between 16 and {MAX_SIZE} px, got {self.animation_size}"),
            (self.crop is None or 8 <= self.crop <= MAX_SIZE, f"crop must be at least 8 px and at most {MAX_SIZE} px, got {self.crop}"),
            (aug.crop is None or 8 <= aug.crop <= MAX_SIZE, f"augment crop must be at least 8 px and at most {MAX_SIZE} px, got {aug.crop}"),
            (0.0 <= self.crop_share <= 1.0, f"crop_share must be in [0, 1], got {self.crop_share}"),
            (self.crop_scale is None or 0 < self.crop_scale[0] <= self.crop_scale[1],
             f"crop_scale must be (low, high) with 0 < low <= high, got {self.crop_scale}"),
            (1 <= aug.copies <= MAX_COPIES, f"augment copies must be at least 1 and at most {MAX_COPIES}, got {aug.copies}"),
            (aug.output is None or 8 <= aug.output <= MAX_SIZE, f"augment output must be between 8 and {MAX_SIZE} px, got {aug.output}"),
            (all(0 <= v <= 1024 for v in (aug.pad, aug.jitter, aug.jitter_after)), "augment pad, jitter and jitter_after must be between 0 and 1024 px"),
            (0 <= aug.rotate <= 360, f"augment rotate must be between 0 and 360 degrees, got {aug.rotate}"),
            (0 < aug.scale[0] <= aug.scale[1] <= 16, f"augment scale must be two numbers 0 < low <= high <= 16, got {aug.scale}"),
            (0.1 <= aug.zoom <= 16, f"augment zoom must be between 0.1 and 16, got {aug.zoom}"),
            (all(0 <= v <= 10 for v in (aug.brightness, aug.contrast, aug.saturation, aug.hue)), "augment colour jitter must be between 0 and 10"),
            (-1e3 <= aug.fill <= 1e3 and -1e3 <= self.l1_centre <= 1e3, "augment fill and l1_centre must be between -1000 and 1000"),
            (all(0 <= v <= 1e9 for v in (self.l1, self.l2, self.tv, self.diversity_weight)), "l1, l2, tv and diversity_weight must be between 0 and 1e9"),
            (-16 <= self.decay <= 16, f"decay must be between -16 and 16, got {self.decay}"),
            (0 <= self.blur_every <= MAX_STEPS and 0 <= self.early_stop <= MAX_STEPS, f"blur_every and early_stop must be between 0 and {MAX_STEPS:,}"),
            (0 <= self.blur_sigma <= MAX_SIGMA and 0 <= self.input_blur <= MAX_SIGMA, f"blur_sigma and input_blur must be between 0 and {MAX_SIGMA}"),
            (0 <= self.seed < 2**63, f"seed must be between 0 and 2**63 - 1, got {self.seed}"),
        ]
        for ok, message in checks:
            if not ok:
                raise FeatvisError(message)
        if self.crop_scale is not None:
            object.__setattr__(self, "crop_scale", tuple(self.crop_scale))
        if isinstance(self.schedule, dict):
            object.__setattr__(self, "schedule", Upscale(**self.schedule))
        upscale = self.upscale  # validates the schedule and bounds its stages and sizes
        if upscale.steps > MAX_STEPS:
            raise FeatvisError(f"the schedule runs {upscale.steps:,} steps, more than {MAX_STEPS:,}")
        if aug.view_size(upscale.final) > MAX_VIEW:
            raise FeatvisError(f"the model would see {aug.view_size(upscale.final)} px images, more than {MAX_VIEW} px")

    @property
    def upscale(self) -> Upscale:
        if isinstance(self.schedule, Upscale):
            return self.schedule
        return named(self.schedule, self.size, self.steps)

    @property
    def total_steps(self) -> int:
        return self.upscale.steps

    @property
    def final_size(self) -> int:
        return self.upscale.final

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict, with the schedule's effective sizes spelled out."""
        data = dataclasses.asdict(self)
        data["augment"]["scale"] = list(self.augment.scale)
        data["sizes"] = self.upscale.sizes
        data["total_steps"] = self.total_steps
        return data

    def replace(self, **changes: Any) -> "RenderConfig":
        """A copy with some fields changed; `augment` may be a dict of Augment fields."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise FeatvisError(f"unknown render setting(s): {', '.join(sorted(unknown))}")
        if isinstance(changes.get("augment"), dict):
            augment = changes["augment"]
            bad = set(augment) - {f.name for f in dataclasses.fields(Augment)}
            if bad:
                raise FeatvisError(f"unknown augment setting(s): {', '.join(sorted(bad))}")
            if "scale" in augment:
                augment = {**augment, "scale": tuple(augment["scale"])}
            changes["augment"] = dataclasses.replace(self.augment, **augment)
        return dataclasses.replace(self, **changes)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> "RenderConfig":
        data = {k: v for k, v in data.items() if k not in ("sizes", "total_steps")}
        return RenderConfig().replace(**data)


DEFAULT_PRESET = "coarse-to-fine"

PRESETS: dict[str, RenderConfig] = {
    # The default, the best pictures per second measured (bench/README.md, "frontier"): Lucid's fft image,
    # optimiser and transforms, grown coarse to fine from 112 to 224 px in 5 stages (`grow`), the model
    # seeing it at its own size. The first 85 % of the steps show the model a random 128 px window zoomed
    # 0.5-1.6x, so a step costs a window, not the canvas, and the picture must hold up at other scales and
    # in crops; the last 15 % see the whole view, where the best image is chosen. lr 0.057 (not 0.05) buys
    # colour at 320 steps; no padding (the whole view is 224 px, not 248) saves 5 % at equal quality.
    "coarse-to-fine": RenderConfig(
        schedule="grow", size=224, steps=320, lr=0.057, crop=128, crop_share=0.85, crop_scale=(0.5, 1.6),
        augment=dataclasses.replace(LUCID_AUGMENT, zoom=1.0, scale=(0.9, 1.1), pad=0),
    ),
    # Lucid / Lucent's render_vis: fft + decorrelation, 128 px, Adam 0.05, 512 steps, model sees 224 px.
    "lucid": RenderConfig(augment=dataclasses.replace(LUCID_AUGMENT, output=224)),
    # Lucent's recipe and settings, but for the first 7/8 of the steps the model sees a random 128 px window
    # of its 224 px view instead of all of it: 1/3 of the pixels at the same magnification
    # (bench/README.md: 2.2x lucid's speed, 6 % less activation, still 1.14x Lucent's).
    "lucid-crop": RenderConfig(augment=dataclasses.replace(LUCID_AUGMENT, output=224), crop=128),
    # Seed 000: grey-initialised pixels, SGD 1.5, L2 0.05, colour jitter + affine, blur every 10 steps.
    "seed-000": RenderConfig(
        param="pixel", size=224, steps=200, optimizer="sgd", lr=1.5, l2=0.05,
        augment=SEED000_AUGMENT, blur_every=10, blur_sigma=1.5, best=False,
    ),
    # Seed 003: 64 -> 400 px by x1.1 every 50 steps, Lucid's transforms, L1 toward grey, blur on upscale.
    "seed-003": RenderConfig(schedule="seed-003", lr=0.05, l1=0.5 / (400 * 400 * 3), augment=LUCID_AUGMENT),
    # Graetz 2019: pixels, 56 -> 408 px in 12 stages of 20 steps, Adam 0.1, blur after each upscale.
    "graetz": RenderConfig(
        param="pixel", schedule="graetz", optimizer="adam", lr=0.05,
        augment=Augment(pad=8, jitter=4, scale=(0.95, 1.05), rotate=5.0, jitter_after=2),
    ),
    # MACO (Fel et al. 2023): phase-only spectrum, NAdam 1.0, several zoomed crops per step.
    "maco": RenderConfig(
        param="maco", size=256, steps=256, optimizer="nadam", lr=1.0,
        augment=Augment(pad=0, jitter=32, scale=(1.0, 2.0), rotate=0.0, jitter_after=0, output=224, copies=4),
    ),
    # Previews: Lucid's recipe for 64 steps at 128 px, the model seeing the canvas magnified as Lucent
    # does (152 -> 224 px at 128 px, zoom kept at other sizes). A third of the default's time, but washed
    # out, and poor at other scales (bench/README.md).
    "fast": RenderConfig(size=128, steps=64, augment=dataclasses.replace(LUCID_AUGMENT, zoom=224 / 152)),
}


def preset(name: str, **overrides: Any) -> RenderConfig:
    """A named preset, optionally with some fields overridden."""
    try:
        base = PRESETS[name]
    except KeyError:
        raise FeatvisError(f"unknown preset {name!r}: expected one of {', '.join(PRESETS)}") from None
    return base.replace(**overrides) if overrides else base
