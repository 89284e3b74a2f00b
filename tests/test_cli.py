"""`featvis render` and `featvis layers`: files, output and one-line errors."""

import imageio.v3 as iio
from PIL import Image

from featvis_pipeline.cli import main


def test_render_writes_png_mp4_webp_and_a_contact_sheet(tmp_path, capsys):
    code = main(["render", "efficientnet_lite0", "blocks.4:0-1", "logits:hen", "--out", str(tmp_path),
                 "--steps", "6", "--size", "48", "--set", "frames=3", "--batch", "2"])
    assert code == 0
    folder = tmp_path / "efficientnet_lite0"
    assert Image.open(folder / "blocks.4" / "c0001.png").size == (48, 48)
    assert iio.imread(folder / "logits" / "k0008.mp4").shape[1:] == (48, 48, 3)
    assert Image.open(folder / "blocks.4" / "c0000.webp").n_frames == 3
    assert (folder / "contact.png").exists()
    assert "3 units in" in capsys.readouterr().out


def test_layers_lists_channels(capsys):
    assert main(["layers", "efficientnet_lite0", "--size", "128"]) == 0
    out = capsys.readouterr().out
    assert "blocks.10" in out and "112  8x8" in out


def test_cli_errors_are_one_line(capsys):
    cases = [
        (["render", "efficientnet_lite0", "blocks.10:500"], "channel 500 out of range"),
        (["render", "efficientnet_lite0", "logits:hen", "--preset", "slow"], "unknown preset 'slow'"),
        (["render", "efficientnet_lite0", "logits:unicorn"], "unknown class 'unicorn'"),
        (["render", "resnet5", "logits:hen"], "unknown model 'resnet5'"),
        (["render", "efficientnet_lite0", "blockz.10:1"], "unknown layer 'blockz.10'"),
        (["render", "efficientnet_lite0", "logits:1", "--set", "steps"], "--set expects FIELD=VALUE"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, err


import pytest  # noqa: E402


@pytest.mark.parametrize("argv, message", [
    (["--set", "lr=nan"], "--set lr: must be a number, got 'nan'"),
    (["--set", "lr=.nan"], "--set lr: must be a finite number, got nan"),
    (["--set", "steps=abc"], "--set steps: must be a whole number, got 'abc'"),
    (["--set", "diversity=two"], "--set diversity: must be a whole number, got 'two'"),
    (["--set", "augment=heavy"], "--set augment: must be a mapping, got 'heavy'"),
    (["--set", "size=32.5"], "--set size: must be a whole number, got 32.5"),
    (["--set", "augment.copies=1000000000"], "augment copies must be at least 1 and at most 64"),
    (["--set", "frames=1000000000000"], "frames must be at least 1 and at most 1000"),
    (["--set", "schedule={start: 64, every: 5, factor: 1.0001, until: 400}"], "more than 64 stages"),
    (["--batch", "0"], "--batch must be between 1 and 4096, got 0"),
    (["--device", "tpu:7"], "--device 'tpu:7': expected cpu, cuda, cuda:N or mps"),
    (["--device", "cuda"], "--device cuda: no CUDA GPU is available here"),
    (["--steps", "abc"], "argument --steps: invalid int value: 'abc'"),
])
def test_render_settings_are_checked_like_flows_yaml_in_one_line(argv, message, capsys, monkeypatch):
    import featvis_core

    monkeypatch.setattr(featvis_core, "load_model", lambda *a, **k: pytest.fail("loaded the model"))
    if argv[:2] == ["--device", "cuda"]:
        import torch

        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["render", "efficientnet_lite0", "blocks.4:0", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_the_same_setting_is_refused_the_same_way_from_flows_yaml(tmp_path):
    """One schema: the words after the prefix are the same for --set and for overrides:."""
    from featvis_core import FeatvisError
    from featvis_pipeline.jobs import load_jobs
    from featvis_pipeline.settings import check_settings, schema_fields

    fields, config = schema_fields()
    assert fields == config, "RenderSettings and RenderConfig have drifted apart"
    for field, value in [("lr", "x"), ("steps", 2.5), ("augment", "heavy"), ("param", "voxel"), ("size", None)]:
        with pytest.raises(FeatvisError) as from_set:
            check_settings({field: value}, "--set")
        flows = tmp_path / "flows.yaml"
        flows.write_text(f"jobs:\n  a: {{model: efficientnet_lite0, logits: [1], overrides: {{{field}: {value!r}}}}}\n"
                         .replace("None", "null"))
        with pytest.raises(FeatvisError) as from_yaml:
            load_jobs(flows)
        assert str(from_set.value).removeprefix("--set ") in str(from_yaml.value), (from_set.value, from_yaml.value)


@pytest.mark.parametrize("spec, message", [
    ("os:system", "is in Python's standard library, not a model factory"),
    ("sys:exit", "is in Python's standard library, not a model factory"),
    ("torch.nn:Linear", "is not callable without arguments"),
    ("torch.nn:Identity", "not 1000 class logits"),
    ("featvis_core.models:imagenet_classes", "returned list, not an nn.Module"),
])
def test_model_factories_are_never_called_blindly(spec, message, capsys):
    assert main(["render", spec, "logits:1"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
