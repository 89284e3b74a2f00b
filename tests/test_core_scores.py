"""Quality scores: hard views, colourfulness and contrast measure what they claim."""

import torch

from featvis_core.scores import HardViews, as_png, colourfulness, contrast, hard_view_rates, view_batches


def test_colourfulness_and_contrast_tell_grey_from_vivid():
    grey = torch.full((1, 3, 32, 32), 0.5)
    stripes = torch.zeros(1, 3, 32, 32)
    stripes[:, 0, :, ::2] = 1.0  # red and blue columns
    stripes[:, 2, :, 1::2] = 1.0
    assert colourfulness(grey).item() == 0 and contrast(grey).item() == 0
    assert colourfulness(stripes).item() > 100 and contrast(stripes).item() > 0.05
    washed = 0.5 + 0.2 * (stripes - 0.5)
    assert colourfulness(washed) < colourfulness(stripes) / 3


def test_hard_views_are_the_png_at_every_size_and_crop():
    image = torch.rand(2, 3, 100, 100)
    views = dict(view_batches(image, seen=80, judge=64))
    sizes = {kind: batch.shape[-1] for kind, batch in views.items()}
    assert sizes["native"] == 100 and sizes["judge"] == 64 and sizes["x0.5"] == 48 and sizes["x1.5"] == 120
    assert [k for k in views if k.startswith("crop")] == ["crop0", "crop1", "crop2"]
    assert all(batch.shape[:2] == (2, 3) for batch in views.values())
    assert torch.equal(as_png(as_png(image)), as_png(image))  # 8-bit, as written


def test_hard_view_rates_reward_a_real_photo_and_not_noise(lite0):
    """A real photograph of a cat is recognised on most hard views; noise is not."""
    from skimage import data

    cat = torch.from_numpy(data.chelsea()[:, 50:350].copy()).permute(2, 0, 1).float()[None] / 255
    cat = torch.nn.functional.interpolate(cat, size=(224, 224), mode="bilinear", antialias=True)
    cats = [lite0.class_index(name) for name in ("tabby", "tiger cat", "Egyptian cat")]
    rates = [hard_view_rates(lite0, cat, [k], seen=224, views=HardViews(crops=2))["top5"].item() for k in cats]
    assert max(rates) >= 0.7
    noise = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    assert hard_view_rates(lite0, noise, [cats[0]], seen=224)["top5"].item() <= 0.2


def test_unit_quality_scores_every_image_and_judges_only_logits(lite0):
    from featvis_core.scores import unit_quality

    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    channel, logit = unit_quality(images, [None, 8], seen=64, model=lite0, judge=lite0)
    assert set(channel) == {"colourfulness", "contrast"}
    assert {"colourfulness", "contrast", "self_top1", "lite0_top1", "lite0_top5"} == set(logit)
    assert all(0 <= logit[k] <= 1 for k in ("self_top1", "lite0_top1", "lite0_top5"))


def test_the_gallery_view_set_keeps_one_view_of_each_kind():
    """The in-run scores see the judge's size, the PNG's own, a smaller, a larger and a crop: five views."""
    from featvis_core.scores import GALLERY_VIEWS

    views = dict(view_batches(torch.rand(1, 3, 100, 100), seen=80, judge=64, views=GALLERY_VIEWS))
    sizes = {kind: batch.shape[-1] for kind, batch in views.items()}
    assert sizes == {"judge": 64, "native": 100, "x0.75": 60, "x1.25": 100, "crop0": 64}
