"""Quality scores for rendered images: does the picture *say* what it was optimised for?

For a class logit the honest test is recognition: show the model (and a second, independently trained
model) randomly shifted, zoomed and turned views of the image, and count how often the target class is
top-1 / top-5. An image that only fools the model pixel-perfectly scores low; the transfer score to
another model says whether the image carries the class to more than the network that drew it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .models import Classifier
from .transforms import Augment, augment, draws

VIEW_AUGMENT = Augment(pad=8, jitter=8, scale=(0.85, 1.15), rotate=10.0, jitter_after=0)


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


def logit_scores(model: Classifier, images: torch.Tensor, classes: list[int],
                 second: Classifier | None = None, views: int = 16) -> list[dict[str, float]]:
    """self_top1/self_top5 (and lite1_top1/lite1_top5 on `second`) for each logit image."""
    top1, top5 = class_rates(model, images, classes, views)
    scores = [{"self_top1": float(a), "self_top5": float(b)} for a, b in zip(top1, top5)]
    if second is not None:
        other1, other5 = class_rates(second, images, classes, views)
        for score, a, b in zip(scores, other1, other5):
            score.update({f"{second.name.split('_')[-1]}_top1": float(a), f"{second.name.split('_')[-1]}_top5": float(b)})
    return scores
