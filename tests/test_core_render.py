"""The batched renderer: independence between images, truncation, objectives, schedules."""

import dataclasses

import pytest
import torch

from featvis_core import FeatvisError, RenderConfig, preset, render
from featvis_core.objectives import Targets, unit_scores
from featvis_core.schedules import Upscale, graetz, grow, seed003
from featvis_core.transforms import augment, draws
from featvis_core.truncate import capture
from featvis_core.units import parse_selector


def one_step_gradient(model, units, size=48):
    """Gradient of one augmented step for a batch of pixel images (shared start for every batch)."""
    generators = [torch.Generator().manual_seed(i) for i in range(len(units))]
    images = torch.full((len(units), 3, size, size), 0.5).add_(torch.randn(len(units), 3, size, size, generator=torch.Generator().manual_seed(0)) * 0.1)
    images.requires_grad_(True)
    aug = preset("lucid").augment
    inputs = augment(images, draws(generators, 1, 1)[0], dataclasses.replace(aug, output=None))
    with capture(model.module, [model.resolve_layer(units[0].layer)], logits=False) as run:
        activation = run(model.normalise(inputs))[model.resolve_layer(units[0].layer)]
    unit_scores(activation, Targets.build(units)).sum().backward()
    return images.grad


def test_changing_unit_j_leaves_image_i_gradient_unchanged(lite0):
    a = parse_selector("blocks.10:1,2,3", 112)
    b = parse_selector("blocks.10:1,40,!7", 112)
    grad_a, grad_b = one_step_gradient(lite0, a), one_step_gradient(lite0, b)
    torch.testing.assert_close(grad_a[0], grad_b[0])
    assert not torch.allclose(grad_a[1], grad_b[1])


def test_rendered_image_does_not_depend_on_batch_mates(lite0, tiny):
    first = render(lite0, parse_selector("blocks.4:1,2", 40), tiny)
    second = render(lite0, parse_selector("blocks.4:1,9", 40), tiny)
    torch.testing.assert_close(first[0].image, second[0].image, atol=2e-3, rtol=0)
    assert (first[1].image - second[1].image).abs().max() > 0.05


def test_truncated_forward_equals_full_forward(lite0):
    x = torch.rand(2, 3, 64, 64)
    full = {}
    module = dict(lite0.module.named_modules())["_blocks.10"]
    handle = module.register_forward_hook(lambda m, i, o: full.setdefault("a", o))
    ran_head = []
    head = lite0.module._fc.register_forward_hook(lambda *a: ran_head.append(1))
    with torch.no_grad():
        lite0.module(x)
        handle.remove()
        ran_head.clear()
        with capture(lite0.module, ["_blocks.10"], logits=False) as run:
            out = run(x)
    head.remove()
    torch.testing.assert_close(out["_blocks.10"], full["a"])
    assert "" not in out and not ran_head  # the classifier head never ran


@pytest.mark.parametrize("selector", ["blocks.10:5", "blocks.10:!5", "blocks.10:5@", "blocks.10:dream", "logits:hen"])
def test_each_objective_raises_its_activation(lite0, tiny, selector):
    units = parse_selector(selector, 1000 if selector.startswith("logits") else 112, lite0.class_index)
    [result] = render(lite0, units, tiny)
    assert result.error is None
    assert result.final > result.start + 2.0, (result.start, result.final)
    assert len(result.history) == tiny.steps
    assert result.image.shape == (3, 48, 48) and 0 <= result.image.min() and result.image.max() <= 1


@pytest.mark.parametrize("param", ["pixel", "fft", "maco"])
def test_parameterisations_and_optimisers(lite0, tiny, param):
    optimizer = {"pixel": "sgd", "fft": "adam", "maco": "nadam"}[param]
    lr = {"pixel": 0.5, "fft": 0.1, "maco": 0.5}[param]
    config = tiny.replace(param=param, optimizer=optimizer, lr=lr, best=False)
    [result] = render(lite0, parse_selector("blocks.4:3", 40), config)
    assert result.final > result.start + 1.0


def test_upscaling_renders_at_growing_sizes(lite0, tiny):
    short = Upscale(start=32, every=3, factor=1.2, stages=4, blur=1.0)
    assert short.sizes == [32, 38, 45, 54]
    [result] = render(lite0, parse_selector("blocks.4:3", 40), tiny.replace(param="pixel", schedule=short))
    assert result.image.shape[-1] == 54 and result.frames.shape[1:] == (54, 54, 3)
    assert len(result.history) == 12
    assert tiny.replace(schedule=short).to_dict()["sizes"] == [32, 38, 45, 54]


def test_schedule_sizes_match_techniques():
    assert graetz().sizes == [56, 67, 80, 96, 115, 138, 165, 198, 237, 284, 340, 408]
    assert graetz().steps == 240
    sizes = seed003().sizes
    assert sizes[0] == 64 and sizes[-1] == 400 and len(sizes) == 21  # 20 upscales by x1.1
    assert all(1.05 < b / a <= 1.1 for a, b in zip(sizes, sizes[1:-1]))
    assert seed003().every == 50
    assert grow(224, 240).sizes == [112, 140, 175, 218, 224] and grow(224, 240).steps == 240
    assert preset("fast", schedule="grow", size=96, steps=40).upscale.sizes[-1] == 96  # --size is the final size


def test_diversity_renders_distinct_images(lite0, tiny):
    [result] = render(lite0, parse_selector("blocks.10:5", 112), tiny.replace(diversity=3))
    assert len(result.extra) == 2
    assert (result.image - result.extra[0]).abs().mean() > 0.02


def test_nan_in_one_unit_does_not_poison_the_tile(lite0, tiny, monkeypatch):
    import importlib

    render_module = importlib.import_module("featvis_core.render")

    original = render_module.unit_scores

    def poisoned(activation, targets):
        scores = original(activation, targets)
        return torch.where(targets.index == 7, torch.full_like(scores, float("nan")), scores)

    monkeypatch.setattr(render_module, "unit_scores", poisoned)
    results = render(lite0, parse_selector("blocks.4:3,7", 40), tiny)
    assert results[1].error and "NaN" in results[1].error
    assert results[0].error is None and torch.isfinite(results[0].image).all()


def test_bad_settings_are_user_errors(lite0):
    with pytest.raises(FeatvisError, match="steps must be positive"):
        RenderConfig(steps=0)
    with pytest.raises(FeatvisError, match="unknown preset"):
        preset("nope")
    with pytest.raises(FeatvisError, match="one target layer"):
        render(lite0, parse_selector("blocks.4:1", 40) + parse_selector("blocks.5:1", 80))
    with pytest.raises(FeatvisError, match="below"):
        render(lite0, parse_selector("blocks.4:1", 40), RenderConfig(size=16))
    with pytest.raises(FeatvisError, match="crop must be"):
        RenderConfig(crop=4)
    with pytest.raises(FeatvisError, match="crop_share"):
        RenderConfig(crop=64, crop_share=1.5)


@pytest.mark.parametrize("u, corner", [(0.5, 48), (0.0, 0), (1.0, 96)])
def test_a_crop_is_a_window_of_the_full_view_at_the_same_magnification(u, corner):
    """crop 128 of the 224 px view: the pixels of the window `corner` px in, with the same sampling."""
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    draws_ = torch.rand(2, 12, generator=torch.Generator().manual_seed(2))
    draws_[:, 10:12] = u
    aug = dataclasses.replace(preset("lucid").augment, output=224)
    full = augment(images, draws_, aug)
    window = augment(images, draws_, dataclasses.replace(aug, crop=128))
    assert window.shape[-2:] == (128, 128)
    torch.testing.assert_close(window, full[..., corner:corner + 128, corner:corner + 128], atol=1e-5, rtol=1e-5)


def test_crop_phase_renders_and_ends_on_the_whole_view(lite0, tiny):
    config = tiny.replace(augment={"output": 96}, crop=48, crop_share=0.75, steps=16)
    seen = []
    net_input = lite0.normalise

    def spy(images):
        seen.append(images.shape[-1])
        return net_input(images)

    lite0.normalise = spy
    try:
        [result] = render(lite0, parse_selector("blocks.4:3", 40), config)
    finally:
        lite0.normalise = net_input
    assert seen[1:13] == [48] * 12 and seen[13:-1] == [96] * 4  # start score, 12 cropped, 4 whole, final
    assert result.final > result.start


def test_a_crop_as_large_as_the_view_changes_nothing(lite0, tiny):
    units = parse_selector("blocks.4:3", 40)
    [plain] = render(lite0, units, tiny.replace(steps=6))
    [cropped] = render(lite0, units, tiny.replace(steps=6, crop=500))
    torch.testing.assert_close(cropped.image, plain.image)
