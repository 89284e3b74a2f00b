"""Unit selectors, model lookups and their one-line errors."""

import pytest

from featvis_core import FeatvisError, Kind, Unit
from featvis_core.units import parse_selector


def test_selectors_expand_to_units():
    units = parse_selector("blocks.10:0-2,5,!7,3@,4@2/1,dream", 112)
    assert [u.spec for u in units] == [
        "blocks.10:0", "blocks.10:1", "blocks.10:2", "blocks.10:5", "blocks.10:!7",
        "blocks.10:3@", "blocks.10:4@2/1", "blocks.10:dream",
    ]
    assert units[4].kind is Kind.NEGATIVE and units[6] == Unit("blocks.10", Kind.NEURON, 4, 2, 1)
    assert len(parse_selector("blocks.4:all", 40)) == 40


def test_specs_round_trip():
    for spec in ["blocks.10:3", "blocks.10:!3", "blocks.10:3@", "blocks.10:3@4/5", "blocks.10:dream", "logits:8"]:
        [unit] = parse_selector(spec, 1000)
        assert unit.spec == spec


def test_logits_by_name(lite0):
    units = parse_selector("logits:hen,pelican,Scuba Diver,iPod,12", 1000, lite0.class_index)
    assert [u.index for u in units] == [8, 144, 983, 605, 12]
    assert all(u.kind is Kind.LOGIT for u in units)


@pytest.mark.parametrize("selector, message", [
    ("blocks.10:112", "channel 112 out of range: the layer has 112"),
    ("blocks.10:5-2", "end before start"),
    ("blocks.10:x", "bad channel 'x'"),
    ("blocks.10", "expected LAYER:CHANNELS"),
    ("blocks.10:1,,2", "empty item"),
    ("blocks.10:3@1", "bad neuron"),
    ("logits:1000", "class 1000 out of range"),
])
def test_bad_selectors_name_the_problem(selector, message):
    with pytest.raises(FeatvisError, match=message):
        parse_selector(selector, 1000 if selector.startswith("logits") else 112)


def test_unknown_class_layer_model(lite0):
    from featvis_core.models import check_model_name

    with pytest.raises(FeatvisError, match="unknown class 'hens'.*'hen'"):
        lite0.class_index("hens")
    with pytest.raises(FeatvisError, match="unknown layer 'blocks.99'"):
        lite0.resolve_layer("blocks.99")
    with pytest.raises(FeatvisError, match="unknown model 'resnet5'"):
        check_model_name("resnet5")
    check_model_name("resnet50")  # torchvision names are known without loading anything


def test_layers_list_feature_maps_in_forward_order(lite0):
    layers = {layer.name: layer for layer in lite0.layers()}
    assert layers["blocks.10"].channels == 112 and (layers["blocks.10"].height, layers["blocks.10"].width) == (14, 14)
    assert layers["blocks.4"].channels == 40
    assert list(layers).index("blocks.4") < list(layers).index("blocks.10")
    assert lite0.layer("blocks.10", size=128).height == 8
    assert lite0.resolve_layer("blocks.10") == "_blocks.10"  # public names drop the underscores


def test_entry_point_models(tmp_path, monkeypatch):
    from featvis_core import load_model

    (tmp_path / "mymodels.py").write_text(
        "import torch\n"
        "def tiny():\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(),\n"
        "        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 1000))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = load_model("mymodels:tiny")
    assert [layer.name for layer in model.layers()][:2] == ["0", "1"]
    with pytest.raises(FeatvisError, match="cannot load model factory"):
        load_model("mymodels:missing")


def test_shipped_class_names_are_torchvisions():
    """The class list ships as a file (no torchvision import at start-up); it must equal torchvision's."""
    from torchvision.models import ResNet50_Weights

    from featvis_core.models import imagenet_classes

    assert imagenet_classes() == list(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def test_directions_parse_round_trip_and_combine():
    from featvis_core.units import caption, channel, unit_from_spec

    [d] = parse_selector("blocks.10:3-0.5*7+2*9", 112)
    assert d.kind is Kind.DIRECTION and d.terms == ((3, 1.0), (7, -0.5), (9, 2.0))
    assert d.spec == "blocks.10:3-0.5*7+2*9" and unit_from_spec(d.spec) == d
    assert caption(d) == "3 − 0.5·7 + 2·9" and d.slug.startswith("d") and len(d.slug) == 13
    # Lucid-style arithmetic, without side effects: the operands stay what they were
    a, b = channel("blocks.10", 3), channel("blocks.10", 7)
    assert a - 0.5 * b == d - 2 * channel("blocks.10", 9)
    assert (a - b) + b == a and -a == parse_selector("blocks.10:!3", 112)[0] and a.kind is Kind.CHANNEL
    with pytest.raises(FeatvisError, match="two layers"):
        a + channel("blocks.4", 1)
    with pytest.raises(FeatvisError, match="bad direction"):
        parse_selector("blocks.10:3+*7", 112)
    with pytest.raises(FeatvisError, match="channel 200 out of range"):
        parse_selector("blocks.10:3+200", 112)


def test_every_kind_scores_as_its_definition_in_one_mixed_batch():
    import torch

    from featvis_core.objectives import Targets, unit_scores

    units = parse_selector("blocks.4:1,!2,3@,4@1/2,dream,3-0.5*7", 40)
    activation = torch.randn(len(units), 40, 5, 5)
    scores = unit_scores(activation, Targets.build(units))
    means = activation.mean(dim=(2, 3))
    expected = [means[0, 1], -means[1, 2], activation[2, 3, 2, 2], activation[3, 4, 2, 1], activation[4].mean(),
                means[5, 3] - 0.5 * means[5, 7]]
    torch.testing.assert_close(scores, torch.stack(expected))
