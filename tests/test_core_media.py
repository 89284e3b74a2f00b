"""Media writers: files decode back with the right frame count and size."""

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from featvis_core import media


def frames(count=10, size=64):
    ramp = torch.linspace(0, 255, count).to(torch.uint8)
    movie = torch.zeros(count, size, size, 3, dtype=torch.uint8)
    movie[..., 0] = ramp.view(-1, 1, 1)
    return movie


def test_png_and_webp_keep_the_image(tmp_path):
    image = torch.rand(3, 50, 50)
    media.write_png(tmp_path / "a.png", image)
    media.write_webp(tmp_path / "a.webp", image, size=32)
    decoded = np.asarray(Image.open(tmp_path / "a.png"))
    assert decoded.shape == (50, 50, 3)
    assert np.abs(decoded / 255.0 - image.permute(1, 2, 0).numpy()).max() <= 1 / 255 + 1e-6
    assert Image.open(tmp_path / "a.webp").size == (32, 32)


def test_mp4_is_h264_with_every_frame_and_no_rescale(tmp_path):
    path = tmp_path / "a.mp4"
    media.write_mp4(path, frames(10, 66), fps=10, hold=0.5)
    video = iio.imread(path)
    assert video.shape == (15, 66, 66, 3)  # 10 frames + 0.5 s held at 10 fps; 66 is not a multiple of 16
    meta = iio.immeta(path)
    assert meta["codec"] == "h264"
    assert abs(int(video[0, ..., 0].mean()) - 0) < 8 and abs(int(video[9, ..., 0].mean()) - 255) < 8


def test_mp4_default_quality_is_crf_30(tmp_path):
    noisy = torch.randint(0, 256, (12, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    media.write_mp4(tmp_path / "default.mp4", noisy)
    media.write_mp4(tmp_path / "crf30.mp4", noisy, quality=30)
    media.write_mp4(tmp_path / "crf23.mp4", noisy, quality=23)
    default = (tmp_path / "default.mp4").read_bytes()
    assert default == (tmp_path / "crf30.mp4").read_bytes()
    assert len(default) < (tmp_path / "crf23.mp4").stat().st_size


def test_odd_sides_are_padded_not_rescaled(tmp_path):
    path = tmp_path / "odd.mp4"
    media.write_mp4(path, frames(4, 33), hold=0)
    assert iio.imread(path).shape == (4, 34, 34, 3)


def test_animated_webp_has_its_frames(tmp_path):
    path = tmp_path / "a.webp"
    media.write_animated_webp(path, frames(40, 64), size=48, max_frames=16)
    with Image.open(path) as picture:
        assert picture.n_frames == 16 and picture.size == (48, 48) and picture.is_animated


def test_frames_must_be_uint8_rgb(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        media.write_mp4(tmp_path / "bad.mp4", torch.zeros(3, 8, 8, 3))
