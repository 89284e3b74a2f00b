"""Every classifier people study: token layers (ViT), channels-last outputs (Swin), fixed input sizes, any
class and channel count, and plain modules, on small random-weight models (tests/model_factories.py)."""

from __future__ import annotations

import re

import pytest
import torch

from featvis_core import Classifier, FeatvisError, RenderConfig, render
from featvis_core.models import _entrypoint
from featvis_core.probe import NCHW, NHWC, TOKENS, Layout
from featvis_core.units import Kind, parse_selector, unit_from_spec
from featvis_pipeline.cli import main

TINY = dict(steps=12, size=32, frames=2, precision="fp32")


def tiny(**changes) -> RenderConfig:
    return RenderConfig(**{**TINY, **changes})


@pytest.fixture(scope="module")
def vit():
    return _entrypoint("model_factories:vit")


@pytest.fixture(scope="module")
def swin():
    return _entrypoint("model_factories:swin")


def test_probe_tells_fixed_sizes_and_layouts(vit, swin):
    assert vit.fixed_size and not swin.fixed_size
    block = vit.layer("encoder.layers.encoder_layer_1")
    assert (block.layout, block.channels, block.height, block.width) == (Layout(TOKENS, 1), 32, 4, 4)
    hidden = vit.layer("encoder.layers.encoder_layer_1.mlp.1")
    assert hidden.layout.kind == TOKENS and hidden.channels == 64
    assert vit.layer("conv_proj").layout.kind == NCHW
    stage = swin.layer("features.1")
    assert stage.layout.kind == NHWC and stage.channels == 16 and stage.height == 56
    assert swin.layer("permute").layout.kind == NCHW  # torchvision permutes back before the pool
    listed = [layer.name for layer in vit.layers()]
    assert "encoder.layers.encoder_layer_0" in listed and "encoder.layers.encoder_layer_1.mlp.1" in listed


def test_layout_maps_tokens_and_channels_last():
    tokens = torch.arange(2 * 17 * 3, dtype=torch.float32).view(2, 17, 3)
    grid = Layout(TOKENS, 1).as_map(tokens)
    assert grid.shape == (2, 3, 4, 4)
    assert torch.equal(grid[1, 2, 0, 1], tokens[1, 1 + 1, 2])  # patch (x=1, y=0) is token 1 + 1
    assert torch.equal(Layout(TOKENS, 1).token(tokens), tokens[:, 0])
    nhwc = torch.randn(2, 5, 5, 7)
    assert torch.equal(Layout(NHWC).as_map(nhwc)[:, 6], nhwc[..., 6])
    with pytest.raises(ValueError):
        Layout(TOKENS, 0).token(tokens)


def test_class_token_selector_round_trips(vit):
    [unit] = vit.units("encoder.layers.encoder_layer_1:3@cls")
    assert unit.kind is Kind.TOKEN and unit.spec == "encoder.layers.encoder_layer_1:3@cls" and unit.slug == "t0003"
    assert unit_from_spec(unit.spec) == unit
    assert [u.index for u in parse_selector("x:0-2@cls", 8)] == [0, 1, 2]
    with pytest.raises(FeatvisError, match="has no class token"):
        vit.units("conv_proj:1@cls")


def _swin_stage(swin: Classifier, image: torch.Tensor) -> torch.Tensor:
    out = {}
    handle = swin.module.get_submodule("features.1").register_forward_hook(lambda m, i, o: out.setdefault("x", o))
    with torch.no_grad():
        swin.module(swin.normalise(image[None]))
    handle.remove()
    return out["x"][0].float()  # (H, W, C)


def test_swin_channel_objective_raises_that_channel_not_a_row(swin):
    """Channels of a channels-last stage are its last axis. Each image must raise its own channel's mean
    more than the other image does, and more than it raises row 3 (what reading the output as NCHW, the
    old behaviour, would have maximised)."""
    results = render(swin, swin.units("features.1:3,7"), tiny(steps=16, size=48))
    start = _swin_stage(swin, torch.full_like(results[0].image, 0.5))
    gains = [_swin_stage(swin, r.image) - start for r in results]  # (H, W, C) each
    channel = [g.mean(dim=(0, 1)) for g in gains]
    row = [g.mean(dim=(1, 2)) for g in gains]
    assert all(r.final > r.start for r in results)
    assert channel[0][3] > channel[1][3] and channel[1][7] > channel[0][7], channel
    assert channel[0][3] > row[0][3] + 0.1, (channel[0][3], row[0][3])


# Lucid's 8 px jitter is a whole ViT patch and a quarter of a 32 px test image: scaled down with the image.
SMALL_JITTER = ["--set", "augment.jitter=2", "--set", "augment.jitter_after=1", "--set", "augment.rotate=5"]


def _rises(capsys, argv: list[str]) -> dict[str, tuple[float, float]]:
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    found = {m[1]: (float(m[2]), float(m[3])) for m in re.finditer(r"^(\S+): activation (\S+) -> (\S+)$", out, re.M)}
    return found


@pytest.mark.parametrize("factory, layer, listed", [
    ("vit", "encoder.layers.encoder_layer_1", "encoder.layers.encoder_layer_0.mlp.1"),
    ("swin", "features.1", "features.3"),
    ("convnext", "features.1", "features.3"),
    ("maxvit", "blocks.0", "blocks.1"),
    ("grey", "features.3", "features.1"),
])
def test_every_kind_renders_a_channel_a_neuron_and_a_logit(factory, layer, listed, tmp_path, capsys):
    assert main(["layers", f"model_factories:{factory}"]) == 0
    assert listed in capsys.readouterr().out
    units = [f"{layer}:2,2@1/1", "logits:3"]
    if factory == "vit":
        units += [f"{layer}:2@cls", "encoder.layers.encoder_layer_0.mlp.1:5"]
    rises = _rises(capsys, ["render", f"model_factories:{factory}", *units, "--steps", "16", "--size", "32",
                            "--set", "frames=2", "--set", "precision=fp32", *SMALL_JITTER, "--out", str(tmp_path)])
    assert len(rises) == len(units) + 1, rises
    for spec, (start, final) in rises.items():
        assert final > start, (spec, start, final)
    folder = tmp_path / f"model_factories-{factory}"
    assert (folder / "contact.png").exists() and (folder / "logits" / "k0003.png").exists()


def test_grayscale_and_multispectral_images_keep_their_channels():
    from PIL import Image

    from featvis_core import media

    grey = _entrypoint("model_factories:grey")
    assert grey.channels == 1 and len(grey.mean) == 1
    [result] = render(grey, grey.units("logits:1"), tiny())
    assert result.image.shape[0] == 1 and result.frames.shape[-1] == 3
    picture = media.to_pil(result.image)
    assert picture.mode == "RGB" and picture.getpixel((3, 3))[0] == picture.getpixel((3, 3))[2]
    bands = _entrypoint("model_factories:four_band")
    assert bands.channels == 4 and bands.display == "first three of 4 channels"
    [result] = render(bands, bands.units("logits:cloud"), tiny())
    assert result.image.shape[0] == 4 and result.final > result.start
    assert isinstance(media.to_pil(result.image), Image.Image)


def test_plain_modules_need_no_wrapper():
    model = _entrypoint("model_factories:plain")
    assert model.classes == [f"class {i}" for i in range(10)] and model.channels == 3
    assert model.class_index("class 7") == 7
    vit = _entrypoint("model_factories:vit")
    assert vit.input_size == 32  # read off torchvision's image_size


def test_one_element_normalisation_and_integer_names():
    from torch import nn

    module = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    model = Classifier("one", module, mean=[0.5], std=[0.2], input_size=32, classes=[0, 1])
    assert model.classes == ["0", "1"] and model.normalise(torch.ones(1, 1, 2, 2)).shape == (1, 1, 2, 2)
    rgb = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(FeatvisError, match="mean has 1 value"):
        Classifier("rgb", rgb, mean=[0.5], input_size=32, classes=["a", "b"])
    with pytest.raises(FeatvisError, match="has no classes"):
        Classifier("none", rgb, classes=[])


def test_explain_works_with_fewer_than_five_classes(tmp_path, capsys):
    from PIL import Image

    image = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), (200, 120, 40)).save(image)
    assert main(["explain", str(image), "--model", "model_factories:three_classes", "--out", str(tmp_path / "x")]) == 0
    assert "top-3" in capsys.readouterr().out


def test_zero_class_model_is_one_clear_line(capsys):
    assert main(["render", "model_factories:zero_classes", "logits:0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no classes" in err and "contact.png" not in err, err


def test_timm_vit_when_installed():
    timm = pytest.importorskip("timm")
    module = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, num_classes=10, depth=2)
    model = Classifier("timm-vit", module, input_size=32, classes=[str(i) for i in range(10)])
    block = model.layer("blocks.1")
    assert block.layout.kind == TOKENS and block.layout.prefix == 1
    [result] = render(model, model.units("blocks.1:3"), tiny())
    assert result.final > result.start


def test_forward_stops_at_the_target_vit_block(vit):
    """The truncation hook (truncate.py) stops a ViT after the target encoder block: later blocks and the
    head never run while a block-0 unit renders."""
    from featvis_core.fastnet import render_network

    ran: list[str] = []
    [result] = render(vit, vit.units("encoder.layers.encoder_layer_0:1"), tiny(steps=2))  # builds the render copy
    network = render_network(vit, vit.module, ["encoder.layers.encoder_layer_0"], vit.input_size)
    handles = [network.get_submodule(p).register_forward_hook(lambda *_, p=p: ran.append(p))
               for p in ("encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_1", "heads")]
    try:
        render(vit, vit.units("encoder.layers.encoder_layer_0:1"), tiny(steps=3))
    finally:
        for handle in handles:
            handle.remove()
    assert "encoder.layers.encoder_layer_0" in ran
    assert "encoder.layers.encoder_layer_1" not in ran and "heads" not in ran, set(ran)


def test_dataset_examples_and_circuits_read_each_layout(vit, swin):
    """Dataset-example scores and circuit attributions are per channel on token and channels-last layers
    too (the channel axis found by the probe), and photos reach a grayscale model as luma."""
    from featvis_core.circuits import attribution
    from featvis_core.examples import scan

    photos = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    tops = scan(vit, [(torch.arange(3), photos)], ["encoder.layers.encoder_layer_1", "logits"], k=2, bottom=1)
    assert tops["encoder.layers.encoder_layer_1"].top_values.shape == (32, 2)
    tops = scan(swin, [(torch.arange(3), photos)], ["features.1"], k=2, bottom=1)
    assert tops["features.1"].top_values.shape == (16, 2)  # 16 channels, not the 8 rows of its 8x8 grid
    rows = attribution(vit, "encoder.layers.encoder_layer_1", "encoder.layers.encoder_layer_0", photos[:2], [0, 5])
    assert rows.shape == (2, 32) and torch.isfinite(rows).all()
    grey = _entrypoint("model_factories:grey")
    tops = scan(grey, [(torch.arange(3), photos)], ["features.3"], k=2, bottom=1)
    assert tops["features.3"].top_values.shape == (16, 2)


def test_attention_in_the_render_copy_projects_with_one_matrix_product(vit):
    """A batch-first nn.MultiheadAttention with gradients on would expand its in-projection weight once per
    token (a batched matmul over a copied weight); the render copy lays its input out so that it does not,
    and gives the same values."""
    from torch.profiler import ProfilerActivity, profile

    from featvis_core.fastnet import fused_copy

    copy = fused_copy(vit.module, [], 32)
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    expected = vit.module(x)

    def expanded_weights(net) -> list:
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            net(x).sum().backward()
        return [e.input_shapes for e in prof.key_averages(group_by_input_shape=True)
                if e.key == "aten::bmm" and any(len(s) == 3 and s[1:] == [32, 96] for s in e.input_shapes)]

    assert expanded_weights(vit.module), "the test no longer sees the expanded projection it guards against"
    assert expanded_weights(copy) == []
    assert torch.allclose(copy(x), expected, atol=1e-5)
