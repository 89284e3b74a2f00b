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
