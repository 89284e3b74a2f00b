"""Quality scores for rendered images: does the picture *say* what it was optimised for, and is it vivid?

For a class logit the honest test is recognition by a second, independently trained model on *hard
views*: the 8-bit PNG as written, shown at several sizes (half to one and a half times the size the
renderer's model saw it at, the model's own input size and the PNG's own size), cropped, flipped and
slightly turned, the way a person meets it in a gallery. An image that only fools its own model
pixel-perfectly, at one scale, scores low here. `colourfulness` and `contrast` make "washed out" a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .fastnet import fast_bfloat16, render_network
from .models import Classifier
from .param import as_rgb
from .transforms import Augment, augment, draws

VIEW_AUGMENT = Augment(pad=8, jitter=8, scale=(0.85, 1.15), rotate=10.0, jitter_after=0)
_GREY = (0.299, 0.587, 0.114)


def as_png(images: torch.Tensor) -> torch.Tensor:
    """The images as an 8-bit PNG stores them (what a gallery shows and a second model is judged on)."""
    return (images.float().clamp(0, 1) * 255).round() / 255


@dataclass(frozen=True)
class HardViews:
    """The hard view set: each kind is one batch (every image shown the same way, with its own draws).

    scales: display sizes as multiples of the size the model saw the image at while rendering;
    crops: random square crops of `crop` (min, max) of the side, shown at the judge's input size;
    every view is flipped at random, turned by up to `rotate` degrees and shifted by up to `shift` of its
    side (grey shows where the turned image leaves the frame)."""

    scales: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5)
    crops: int = 3
    crop: tuple[float, float] = (0.6, 0.85)
    rotate: float = 10.0
    shift: float = 0.06
    smallest: int = 48

    def sizes(self, image: int, seen: int, judge: int) -> dict[str, int]:
        """Display size of each whole-image view kind, by name."""
        sizes = {"judge": judge, "native": image}
        sizes.update({f"x{k:g}": max(self.smallest, round(k * seen)) for k in self.scales})
        return sizes


GALLERY_VIEWS = HardViews(scales=(0.75, 1.25), crops=1)
"""The gallery's per-unit view set, one view of each kind (the judge's size, the PNG's own, smaller and
larger than the model saw it, a crop): scoring every logit of a full atlas costs half as much as on the
full set, which benchmarks and `featvis render --scores` keep."""


def _flip_turn_shift(images: torch.Tensor, u: torch.Tensor, views: HardViews) -> torch.Tensor:
    """Per image: a random horizontal flip, a turn of up to `rotate` degrees and a shift."""
    angle = (u[:, 0] * 2 - 1) * views.rotate * math.pi / 180
    flip = torch.where(u[:, 1] < 0.5, -1.0, 1.0)
    shift = (u[:, 2:4] * 2 - 1) * views.shift * 2  # normalised coordinates span 2
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], -1),
                         torch.stack([sin * flip, cos, shift[:, 1]], -1)], -2)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images - 0.5, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + 0.5


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=size < images.shape[-1])


def _crops(images: torch.Tensor, u: torch.Tensor, views: HardViews, size: int) -> torch.Tensor:
    """One random square crop per image (side a random share of the image's), resized to `size`."""
    side = views.crop[0] + (views.crop[1] - views.crop[0]) * u[:, 0]
    centre = (u[:, 1:3] * 2 - 1) * (1 - side[:, None])
    flip = torch.where(u[:, 3] < 0.5, -1.0, 1.0)
    zero = torch.zeros_like(side)
    theta = torch.stack([torch.stack([side * flip, zero, centre[:, 0]], -1),
                         torch.stack([zero, side, centre[:, 1]], -1)], -2)
    grid = F.affine_grid(theta, [len(images), 3, size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def view_batches(images: torch.Tensor, seen: int, judge: int, views: HardViews = HardViews(), seed: int = 0):
    """Yield (kind, batch): every hard view of `images` (B, 3, H, W), one kind at a time."""
    images = as_png(images)
    generator = torch.Generator().manual_seed(seed)
    for kind, size in views.sizes(images.shape[-1], seen, judge).items():
        u = torch.rand(len(images), 4, generator=generator).to(images.device)
        yield kind, _flip_turn_shift(_resize(images, size), u, views)
    for i in range(views.crops):
        u = torch.rand(len(images), 4, generator=generator).to(images.device)
        yield f"crop{i}", _crops(images, u, views, judge)


@torch.no_grad()
def hard_view_rates(judge: Classifier, images: torch.Tensor, classes: list[int], seen: int,
                    views: HardViews = HardViews(), seed: int = 0, fast: bool = False) -> dict[str, torch.Tensor]:
    """Per-image top-1 and top-5 rates of `judge` over the hard views, overall and per view kind:
    {"top1": (B,), "top5": (B,), "top5_<kind>": (B,) ...}. `seen` is the side, in pixels, the image had
    in the renderer's model input (its size times the magnification it was rendered at). `fast`: the
    judge's fused bf16 copy where bf16 is fast (a gallery's per-unit scores, 2-3x cheaper on a CPU with
    AMX); benchmarks keep the exact fp32 network."""
    device = judge.device
    bf16 = fast and fast_bfloat16(device)
    net = render_network(judge, judge.module, [], judge.input_size, torch.bfloat16) if bf16 else judge.module
    targets = torch.as_tensor(classes, device=device)
    top1, top5, rates = [], [], {}
    fixed = judge.fixed_size
    for kind, batch in view_batches(images.to(device), seen, judge.input_size, views, seed):
        if fixed and batch.shape[-1] != judge.input_size:  # a model of one size sees every view at that size
            batch = F.interpolate(batch, size=(judge.input_size,) * 2, mode="bilinear", align_corners=False,
                                  antialias=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = net(judge.normalise(batch).contiguous(memory_format=torch.channels_last)).float()
        best = logits.topk(min(5, logits.shape[1]), dim=1).indices
        top1.append((best[:, 0] == targets).float())
        top5.append((best == targets[:, None]).any(1).float())
        rates[f"top5_{kind}"] = top5[-1].cpu()
    return {"top1": torch.stack(top1).mean(0).cpu(), "top5": torch.stack(top5).mean(0).cpu(), **rates}


def colourfulness(images: torch.Tensor) -> torch.Tensor:
    """Hasler & Suesstrunk's colourfulness (2003) per image, on the 0-255 scale: ~0 grey, ~15 slightly,
    ~33 moderately, ~59 quite, ~82 highly, ~109 extremely colourful."""
    rgb = as_png(images) * 255
    rg = rgb[:, 0] - rgb[:, 1]
    yb = 0.5 * (rgb[:, 0] + rgb[:, 1]) - rgb[:, 2]
    spread = (rg.flatten(1).var(1, unbiased=False) + yb.flatten(1).var(1, unbiased=False)).sqrt()
    centre = (rg.flatten(1).mean(1).square() + yb.flatten(1).mean(1).square()).sqrt()
    return spread + 0.3 * centre


def contrast(images: torch.Tensor) -> torch.Tensor:
    """RMS contrast per image: the standard deviation of luminance in [0, 1]."""
    grey = torch.einsum("c,bchw->bhw", torch.tensor(_GREY, device=images.device), as_png(images))
    return grey.flatten(1).std(1, unbiased=False)


@torch.no_grad()
def class_rates(model: Classifier, images: torch.Tensor, classes: torch.Tensor | list[int],
                views: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image fraction of `views` augmented views where the target class is top-1 and top-5.
    `images` is (B, 3, H, W) in [0, 1]; views are fed at the model's own input size."""
    device = model.device
    images = images.to(device).float()
    targets = torch.as_tensor(classes, device=device).repeat_interleave(views)
    generators = [torch.Generator().manual_seed(seed * 7919 + i) for i in range(len(images))]
    uniforms = draws(generators, 1, views, device)[0]
    inputs = augment(images, uniforms, Augment(**{**VIEW_AUGMENT.__dict__, "copies": views}))
    inputs = F.interpolate(inputs, size=(model.input_size,) * 2, mode="bilinear", align_corners=False)
    logits = model.module(model.normalise(inputs).contiguous(memory_format=torch.channels_last)).float()
    top5 = logits.topk(5, dim=1).indices
    top1_hit = (top5[:, 0] == targets).float().view(-1, views).mean(1)
    top5_hit = (top5 == targets[:, None]).any(1).float().view(-1, views).mean(1)
    return top1_hit.cpu(), top5_hit.cpu()


def seen_size(config) -> int:
    """Side, in pixels, that a config's final image has in the model's input (the hard views' 1x)."""
    size, aug = config.final_size, config.augment
    return round(aug.view_size(size) * size / (size + 2 * aug.pad))


def can_judge(model: Classifier, judge: Classifier) -> bool:
    """Can `judge` say whether `model`'s class images transfer? Only with the same classes, in the same
    order, on the same kind of image."""
    return judge.channels == model.channels and list(judge.classes) == list(model.classes)


def unit_quality(images: torch.Tensor, classes: list[int | None], seen: int, model: Classifier,
                 judge: Classifier | None = None, views: HardViews = HardViews(),
                 fast: bool = False) -> list[dict[str, float]]:
    """The scores a gallery shows per unit: colourfulness and contrast of every image and, for class logits
    (`classes[i]` not None), top-1 on its own model and top-1/top-5 on `judge` over the hard `views`
    (`fast`: see `hard_view_rates`)."""
    images = images.float()
    shown = as_rgb(images)
    scores = [{"colourfulness": round(float(c), 2), "contrast": round(float(r), 4)}
              for c, r in zip(colourfulness(shown), contrast(shown))]
    if judge is not None and not can_judge(model, judge):
        judge = None  # another class list or another kind of image: its top-k would mean nothing
    logits = [i for i, k in enumerate(classes) if k is not None]
    if logits:
        chosen, targets = images[logits], [classes[i] for i in logits]
        own = hard_view_rates(model, chosen, targets, seen, views, fast=fast)
        other = hard_view_rates(judge, chosen, targets, seen, views, fast=fast) if judge is not None else None
        name = judge.name.split("_")[-1] if judge is not None else ""
        for row, i in enumerate(logits):
            scores[i]["self_top1"] = round(float(own["top1"][row]), 3)
            if other is not None:
                scores[i][f"{name}_top1"] = round(float(other["top1"][row]), 3)
                scores[i][f"{name}_top5"] = round(float(other["top5"][row]), 3)
    return scores
