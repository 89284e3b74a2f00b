"""A dataset folder is untrusted input (issue 19, item 2.3): one bad file is skipped and reported in one
escaped warning line, never fatal; pixel counts are bounded before decoding; only regular files are read
(no FIFO, device or link); a shard whose images are all unreadable has no examples and the pass finishes;
`featvis explain` on a decompression bomb is one line.

Generated folders (hypothesis) mix good images with random bytes, truncated images, huge declared sizes,
FIFOs, links and odd names; each is read the way the examples pass reads it, bounded in time. Counts per
family go to <pytest basetemp>/faults-datasets-counts.json (and are printed with pytest -s).
"""

from __future__ import annotations

import io
import json
import logging
import os
import struct
import threading
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

COUNTS: Counter = Counter()
EXAMPLES = int(os.environ.get("FEATVIS_FAULT_EXAMPLES", "40"))


@pytest.fixture(scope="module", autouse=True)
def report_counts(tmp_path_factory):
    yield
    report = {"families": dict(COUNTS), "total": sum(v for k, v in COUNTS.items() if not k.startswith("("))}
    (tmp_path_factory.getbasetemp() / "faults-datasets-counts.json").write_text(json.dumps(report, indent=1))
    print(f"\ndataset-folder inputs: {report['total']} ({', '.join(f'{k} {v}' for k, v in sorted(COUNTS.items()))})")


# -- files ------------------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height RGB pixels, with (almost) no pixel data: tiny on disk."""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""))


def good_image(seed: int, kind: str = "png") -> bytes:
    rng = np.random.default_rng(seed)
    picture = Image.fromarray(rng.integers(0, 255, (6, 7, 3), dtype=np.uint8)).resize((40 + seed % 9, 36))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG" if kind == "png" else "JPEG")
    return buffer.getvalue()


def make_bad(folder: Path, outside: Path) -> dict[str, str]:
    """One of each bad file the issue lists; name -> what it is."""
    jpeg = good_image(3, "jpg")
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("just some text, named like a photo\n")
    (folder / "bomb.png").write_bytes(png_header(30000, 30000))  # Pillow's own DecompressionBombError
    (folder / "huge.png").write_bytes(png_header(10000, 10000))  # below Pillow's bound, above ours
    (folder / "passwd.png").symlink_to("/etc/passwd")
    (folder / "outside.jpg").symlink_to(outside / "secret.jpg")
    (folder / "linked-folder").symlink_to(outside, target_is_directory=True)
    os.mkfifo(folder / "fifo.png")
    (folder / "esc\x1b]0;title\x07\u202ename.png").write_bytes(b"\x1b[2J not an image")
    return {"truncated.jpg": "truncated", "empty.jpg": "0 bytes", "text.jpg": "text", "bomb.png": "bomb",
            "huge.png": "huge", "passwd.png": "link", "outside.jpg": "link", "linked-folder": "link",
            "fifo.png": "fifo", "esc\x1b]0;title\x07\u202ename.png": "name"}


@pytest.fixture
def outside(tmp_path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.jpg").write_bytes(good_image(99, "jpg"))
    (folder / "inner.png").write_bytes(good_image(98))
    return folder


def in_time(function, seconds: float = 120.0):
    """Run `function` in a thread; a hang (a FIFO read) fails the test instead of stopping the suite."""
    result: dict = {}

    def target():
        try:
            result["value"] = function()
        except BaseException as error:  # noqa: BLE001 - re-raised below
            result["error"] = error

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s (a FIFO or a device read?)"
    if "error" in result:
        raise result["error"]
    return result["value"]


class Warnings(logging.Handler):
    """The featvis.examples warnings, caught on that logger itself (importing Prefect replaces the root
    logger's handlers, pytest's caplog among them)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def warned():
    import featvis_pipeline.extras  # noqa: F401 - Prefect's logging set-up first

    handler = Warnings()
    logger = logging.getLogger("featvis.examples")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def assert_escaped(lines: list[str]) -> None:
    for line in lines:
        assert all(ch.isprintable() for ch in line), repr(line)


# -- the examples pass on a folder with bad files -------------------------------------------------------


def _job(folder: Path, store: Path):
    from featvis_pipeline.jobs import JobSpec

    return JobSpec.model_validate({
        "model": "efficientnet_lite0", "layers": {"blocks.4": "0-2"}, "logits": [1], "store": str(store),
        "overrides": {"size": 48, "steps": 8},
        "examples": {"folder": str(folder), "shard": 1, "top": 2, "negatives": 1, "explain": False,
                     "circuits": False}})


def test_a_folder_of_only_bad_files_has_no_examples_and_the_pass_finishes(lite0, tmp_path, outside, warned):
    """Every image unreadable, one shard each: the old pass failed with KeyError: 'blocks.4' (or hung on the FIFO)."""
    from featvis_pipeline import extras
    from featvis_pipeline.plan import make_plan
    from featvis_pipeline.store import Store

    folder = tmp_path / "images"
    folder.mkdir()
    bad = make_bad(folder, outside)
    job = _job(folder, tmp_path / "store")
    plan = make_plan("tiny", job, lite0)
    store = Store(job.store)
    summary = in_time(lambda: extras.run_extras("tiny", job, plan, store))
    assert summary["examples"]["images"] == 6  # the regular files, each hashed, none decodable
    manifest = json.loads((store.root / "examples" / "manifests" / "tiny.json").read_text())
    assert all(lists == {"top": [], "bottom": []} for lists in manifest["examples"]["units"].values()) or \
        manifest["examples"]["units"] == {}
    assert manifest["examples"]["images"] == [] and manifest["examples"]["thumbs"] == {}
    lines = warned.lines
    assert_escaped(lines)
    for name in bad:
        shown = repr(name)[1:-1]
        assert sum(shown in line for line in lines) == 1, (name, lines)  # reported once, escaped
    assert (outside / "secret.jpg").read_bytes() == good_image(99, "jpg")
    assert not any(p.is_symlink() for p in store.root.rglob("*"))
    # and again, with nothing changed: nothing to do, no error
    assert extras.pending("tiny", job, plan, store) is False


def test_bad_files_beside_good_ones_are_skipped_and_the_good_ones_give_examples(lite0, tmp_path, outside, warned):
    from featvis_pipeline import extras
    from featvis_pipeline.plan import make_plan
    from featvis_pipeline.store import Store

    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    make_bad(folder / "sub", outside)
    for i in range(3):
        (folder / f"good{i}.png").write_bytes(good_image(i))
    job = _job(folder, tmp_path / "store")
    plan = make_plan("tiny", job, lite0)
    in_time(lambda: extras.run_extras("tiny", job, plan, Store(job.store)))
    manifest = json.loads((tmp_path / "store" / "examples" / "manifests" / "tiny.json").read_text())
    shown = {image["name"] for image in manifest["examples"]["images"]}
    assert shown and shown <= {"good0.png", "good1.png", "good2.png"}
    assert len(manifest["examples"]["units"]["blocks.4:0"]["top"]) == 2
    assert_escaped(warned.lines) or None
    assert warned.lines


def test_pixels_are_bounded_before_decoding(tmp_path, monkeypatch):
    """A header that declares 100 Mpixel is refused from its header: the decoder never runs."""
    from featvis_core.examples import MAX_PIXELS, open_rgb

    decoded = []
    real_convert = Image.Image.convert
    monkeypatch.setattr(Image.Image, "convert", lambda self, *a, **k: (decoded.append(self.size), real_convert(self, *a, **k))[1])
    for width, height in ((10000, 10000), (30000, 30000), (MAX_PIXELS // 1000 + 1, 1000), (2**31 - 1, 2**31 - 1)):
        path = tmp_path / f"{width}x{height}.png"
        path.write_bytes(png_header(width, height))
        with pytest.raises(ValueError, match="limit"):
            open_rgb(path)
    assert decoded == []
    (tmp_path / "ok.png").write_bytes(good_image(1))
    assert open_rgb(tmp_path / "ok.png").size == (41, 36) and decoded == [(41, 36)]


def test_only_regular_files_are_opened(tmp_path, outside):
    from featvis_core.examples import image_id, list_images, open_rgb

    folder = tmp_path / "images"
    folder.mkdir()
    make_bad(folder, outside)
    names = sorted(p.name for p in list_images(folder))
    assert names == sorted(["bomb.png", "empty.jpg", "esc\x1b]0;title\x07\u202ename.png", "huge.png", "text.jpg",
                            "truncated.jpg"])
    for name in ("fifo.png", "passwd.png", "outside.jpg"):  # even when handed one directly
        with pytest.raises(OSError):
            in_time(lambda name=name: image_id(folder / name), 20)
        with pytest.raises(OSError):
            in_time(lambda name=name: open_rgb(folder / name), 20)
    assert open_rgb(folder / "outside.jpg", follow=True).size == (40, 36)  # a path the user typed


def test_explain_on_bad_images_is_one_line(tmp_path, outside, capsys):
    from featvis_pipeline.cli import main

    folder = tmp_path / "images"
    folder.mkdir()
    make_bad(folder, outside)
    for name, phrase in [("bomb.png", "decompression bomb"), ("huge.png", "limit"), ("truncated.jpg", ""),
                         ("empty.jpg", "not an image"), ("text.jpg", "not an image"), ("fifo.png", "not a regular file"),
                         ("esc\x1b]0;title\x07\u202ename.png", "not an image"), ("linked-folder", "")]:
        code = in_time(lambda name=name: main(["explain", str(folder / name), "--out", str(tmp_path / "out")]), 60)
        captured = capsys.readouterr()
        assert code == 2, (name, captured.err)
        [line] = captured.err.splitlines()
        assert line.startswith("featvis: error: ") and phrase in line and "Traceback" not in line, line
        assert_escaped([line])
        COUNTS["explain on a bad image"] += 1
    assert not (tmp_path / "out").exists()


# -- generated folders -----------------------------------------------------------------------------------

NAMES = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=12),
    st.sampled_from(["-rf", "--help", " lead", "trail ", "a\nb", "\x1b[31m", "\u202egnp", "..x", "$(id)", "`id`"]),
)


def entries() -> st.SearchStrategy:
    kinds = st.sampled_from(["good", "random", "truncated", "huge", "zero", "text", "fifo", "link-file", "link-dir",
                             "link-dangling", "link-loop", "folder"])
    return st.lists(st.tuples(kinds, NAMES, st.sampled_from([".png", ".jpg", ".jpeg", ".JPG", ".txt", ""]),
                              st.binary(max_size=256), st.integers(0, 2**31)), min_size=1, max_size=7)


def build(folder: Path, outside: Path, spec) -> tuple[set[str], set[str]]:
    """Write the entries; (relative names of readable images, names of entries that must be reported)."""
    good, reported = set(), set()
    for n, (kind, name, suffix, data, number) in enumerate(spec):
        name = f"{n}{name}{suffix}"  # a digit first: never hidden, never an option
        path = folder / name
        image_like = suffix.lower() in (".png", ".jpg", ".jpeg")
        if kind == "good":
            path.write_bytes(good_image(number % 50, "png" if n % 2 else "jpg"))
            if image_like:
                good.add(name)
        elif kind == "random":
            path.write_bytes(data)
        elif kind == "truncated":
            path.write_bytes(good_image(number % 50)[: number % 90])
        elif kind == "huge":
            path.write_bytes(png_header(8001 + number % 2**20, 8001 + (number >> 5) % 2**20))  # > 64 Mpixel
        elif kind == "zero":
            path.write_bytes(b"")
        elif kind == "text":
            path.write_text(data.decode("latin-1"), encoding="latin-1")
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "link-file":
            path.symlink_to(outside / "secret.jpg")
        elif kind == "link-dir":
            path.symlink_to(outside, target_is_directory=True)
        elif kind == "link-dangling":
            path.symlink_to(outside / "nothing-here.png")
        elif kind == "link-loop":
            path.symlink_to(path)
        else:
            path.mkdir()
            (path / f"inner{suffix or '.png'}").write_bytes(good_image(number % 50))
            if suffix.lower() in (".png", ".jpg", ".jpeg", ""):
                good.add(f"{name}/inner{suffix or '.png'}")
            continue
        if image_like and kind != "good":
            reported.add(name)
    return good, reported


def test_generated_folders_are_read_without_a_crash_a_hang_or_a_read_outside(tmp_path_factory, warned):
    """list_images -> index_images -> views_of, as a shard reads its images: the readable images are exactly
    the good regular files; every other image-named entry is skipped with one escaped warning line."""
    from featvis_core.examples import CropSpec, list_images, views_of
    from featvis_pipeline.examples import index_images
    from featvis_pipeline.store import Store

    base = tmp_path_factory.mktemp("generated-folders")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(good_image(99, "jpg"))
    counter = iter(range(10**9))

    @settings(max_examples=EXAMPLES * 5, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(entries())
    def check(spec):
        case = base / f"case{next(counter)}"
        folder = case / "images"
        folder.mkdir(parents=True)
        good, reported = build(folder, outside, spec)
        warned.lines.clear()

        def read():
            files = list_images(folder)
            images = index_images(Store(case / "store"), folder, files)
            numbers = [n for batch, _ in views_of([Path(i.path) for i in images], [i.id for i in images],
                                                  CropSpec(crops=1), 32, 4) for n in batch.tolist()]
            return images, numbers
        images, numbers = in_time(read, 60)
        readable = {images[n // 2].rel for n in numbers}
        assert readable == good, (spec, readable, good)
        lines = warned.lines
        assert_escaped(lines)
        for name in reported:
            assert sum(line.startswith("skipping ") and repr(name)[1:-1] in line for line in lines) >= 1, (name, lines)
        assert (outside / "secret.jpg").read_bytes() == good_image(99, "jpg")
        assert sorted(p.name for p in case.iterdir()) <= ["images", "store"]
        COUNTS["generated dataset folder"] += 1
        COUNTS["(entries in generated folders)"] += len(spec)

    check()
