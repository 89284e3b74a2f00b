"""A corrupt store: truncated, deleted, garbled and altered files. `featvis verify` names every one in a
readable line, `verify --repair` removes them, `featvis run` re-renders exactly those units, and the site
never publishes a unit whose files fail their checksum. Plus the store's own defences against malformed
meta.json and a disk that fills up while a manifest is written."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import TINY_JOB
from featvis_pipeline.cli import main
from featvis_pipeline.store import Store

MODEL = "efficientnet_lite0"


def manifest(store: Path) -> dict:
    return json.loads((store / "manifests" / "tiny.json").read_text())


def paths(store: Path) -> dict[str, str]:
    return {u["unit"]: u["path"] for u in manifest(store)["units"]}


def meta_stats(store: Path) -> dict[str, tuple[int, int]]:
    return {p: ((store / p / "meta.json").stat().st_ino, (store / p / "meta.json").stat().st_mtime_ns)
            for p in paths(store).values() if (store / p / "meta.json").exists()}


def hidden(store: Path) -> list[Path]:
    return [p for p in store.rglob("*") if p.name.endswith(".tmp")]


def run_cli(capsys, *argv: str) -> tuple[int, list[str], str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, [line for line in captured.out.splitlines() if line.strip()], captured.err


@pytest.fixture(scope="module")
def pristine(prefect_server, tmp_path_factory) -> Path:
    """The tiny job (7 units) rendered once, in this process; tests work on copies."""
    folder = tmp_path_factory.mktemp("pristine")
    flows = folder / "flows.yaml"
    flows.write_text(TINY_JOB.format(store=folder / "store", batch=4, extra=""))
    from featvis_pipeline.flows import atlas

    summary = atlas(job="tiny", flows=str(flows))
    assert summary["rendered"] == 7 and summary["failed"] == 0
    return folder / "store"


@pytest.fixture
def store_copy(pristine, tmp_path) -> tuple[Path, Path]:
    store = Path(shutil.copytree(pristine, tmp_path / "store"))
    flows = tmp_path / "flows.yaml"
    flows.write_text(TINY_JOB.format(store=store, batch=4, extra=""))
    return store, flows


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    path.write_bytes(bytes(data))  # same size: only the checksum can tell


# unit -> (what is done to it, the phrase verify must print for it)
CORRUPTIONS = {
    "blocks.4:0": (lambda d: truncate(d / "image.png"), "image.png has {} bytes, expected {}"),
    "blocks.4:2": (lambda d: (d / "meta.json").write_text('{"schema": 1, "key": "'), "meta.json is not valid JSON"),
    "blocks.10:5": (lambda d: flip_bytes(d / "image.webp"), "image.webp does not match its checksum"),
    "logits:8": (lambda d: (d / "anim.mp4").unlink(), "anim.mp4 is missing"),
    "logits:12": (lambda d: (d / "meta.json").write_text("[1, 2, 3]"), "meta.json is not a JSON object"),
}


@pytest.mark.slow
def test_verify_names_each_corruption_and_run_rerenders_exactly_those(store_copy, capsys, tmp_path):
    store, flows = store_copy
    where = paths(store)
    sizes = {}
    for unit, (damage, _) in CORRUPTIONS.items():
        sizes[unit] = (store / where[unit] / "image.png").stat().st_size
        damage(store / where[unit])
    intact = {p: s for p, s in meta_stats(store).items() if p not in {where[u] for u in CORRUPTIONS}}
    assert len(intact) == 2

    code, lines, err = run_cli(capsys, "verify", "tiny", "--flows", str(flows))
    assert code == 1 and err == ""
    assert lines[-1] == "checked 7 units: 5 corrupt found (--repair removes them)"
    reported = lines[:-1]
    assert len(reported) == len(CORRUPTIONS), reported
    for unit, (_, phrase) in CORRUPTIONS.items():
        [line] = [line for line in reported if line.startswith(f"tiny: {unit} ")]
        if "{}" in phrase:
            phrase = phrase.format((store / where[unit] / "image.png").stat().st_size, sizes[unit])
        assert line == f"tiny: {unit} ({where[unit]}): {phrase}"

    # the site: every corrupt unit is left unpublished, the intact ones are published
    from featvis_site.build import build_site
    from featvis_site.store_reader import read_store

    states = {u.unit: u.state for u in read_store(store).units}
    assert {u for u, s in states.items() if s == "done"} == {"blocks.4:1", "blocks.10:6"}, states
    report = build_site(store, tmp_path / "site")
    for unit, path in where.items():
        published = (tmp_path / "site" / "media" / path).exists()
        assert published == (unit not in CORRUPTIONS), f"{unit}: published={published}"
    assert report.published == 2

    code, lines, err = run_cli(capsys, "run", "tiny", "--flows", str(flows))
    assert code == 0, err
    assert "tiny: 5 rendered, 2 cached, 0 failed" in lines[-1]
    assert {p: s for p, s in meta_stats(store).items() if p in intact} == intact, "an intact unit was re-rendered"
    assert manifest(store)["counts"] == {"done": 7, "pending": 0, "failed": 0}
    assert hidden(store) == []
    code, lines, _ = run_cli(capsys, "verify", "--flows", str(flows))
    assert code == 0 and lines == ["checked 7 units: 0 corrupt"]


def add_legacy_anim(folder: Path) -> None:
    """Make a unit folder look like one written before the hover preview became the MP4: an animated
    anim.webp listed in meta.json under the role anim_webp."""
    import hashlib

    from PIL import Image

    frames = [Image.new("RGB", (32, 32), (i * 40, 80, 160)) for i in range(4)]
    frames[0].save(folder / "anim.webp", format="WEBP", save_all=True, append_images=frames[1:], duration=60, loop=0)
    data = (folder / "anim.webp").read_bytes()
    meta = json.loads((folder / "meta.json").read_text())
    meta["files"]["anim_webp"] = {"path": "anim.webp", "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (folder / "meta.json").write_text(json.dumps(meta))


@pytest.mark.slow
def test_a_unit_of_an_older_store_with_anim_webp_verifies_is_cached_and_published(store_copy, capsys, tmp_path):
    """New units have no anim.webp; one written by an older featvis (with its anim_webp role) is still intact:
    verify passes, run keeps it cached, and the site publishes the unit (its MP4 as the hover preview) but
    not the anim.webp. A damaged anim.webp is still caught like any listed file."""
    store, flows = store_copy
    where = paths(store)
    assert not list(store.rglob("anim.webp")), "new units must not have an anim.webp"
    old, damaged = where["blocks.4:1"], where["logits:12"]
    add_legacy_anim(store / old)
    add_legacy_anim(store / damaged)
    truncate(store / damaged / "anim.webp")

    code, lines, _ = run_cli(capsys, "verify", "tiny", "--flows", str(flows))
    assert code == 1
    assert lines[0].startswith(f"tiny: logits:12 ({damaged}): anim.webp has ") and len(lines) == 2
    assert lines[-1] == "checked 7 units: 1 corrupt found (--repair removes them)"

    from featvis_site.build import build_site
    from featvis_site.store_reader import read_store

    [unit] = [u for u in read_store(store).units if u.path == old]
    assert unit.published and set(unit.files) == {"image_web", "thumb", "mp4"}
    build_site(store, tmp_path / "site")
    media = tmp_path / "site" / "media" / old
    assert (media / "anim.mp4").is_file() and (media / "thumb.webp").is_file() and not (media / "anim.webp").exists()
    assert "anim_webp" not in (media / "unit.json").read_text()
    assert not list((tmp_path / "site").rglob("anim.webp"))
    from featvis_site.layout import layer_page, page_url, rel

    grid = (tmp_path / "site" / page_url(layer_page(MODEL, "blocks.4")) / "index.html").read_text()
    assert f'data-anim="{rel(layer_page(MODEL, "blocks.4"), f"media/{old}/anim.mp4")}"' in grid

    before = meta_stats(store)
    code, lines, err = run_cli(capsys, "run", "tiny", "--flows", str(flows))
    assert code == 0, err
    assert "tiny: 1 rendered, 6 cached, 0 failed" in lines[-1]
    assert meta_stats(store)[old] == before[old], "the older unit was re-rendered"
    assert (store / old / "anim.webp").is_file() and not (store / damaged / "anim.webp").exists()
    code, lines, _ = run_cli(capsys, "verify", "--flows", str(flows))
    assert code == 0 and lines == ["checked 7 units: 0 corrupt"]


@pytest.mark.slow
def test_site_does_not_publish_a_unit_whose_png_fails_its_checksum(store_copy):
    from featvis_site.store_reader import read_store

    store, _ = store_copy
    path = paths(store)["blocks.4:0"]
    truncate(store / path / "image.png")
    assert Store(store).problems(path)
    [unit] = [u for u in read_store(store).units if u.unit == "blocks.4:0"]
    assert not unit.published, "the site publishes a unit whose image.png fails its checksum"


@pytest.mark.slow
def test_verify_repair_removes_corrupt_units_and_run_renders_them(store_copy, capsys):
    store, flows = store_copy
    where = paths(store)
    (store / where["blocks.10:6"] / "anim.mp4").unlink()
    truncate(store / where["logits:12"] / "thumb.webp")
    before = meta_stats(store)

    code, lines, _ = run_cli(capsys, "verify", "--repair", "--flows", str(flows))
    assert code == 0
    assert lines[0] == f"tiny: blocks.10:6 ({where['blocks.10:6']}): anim.mp4 is missing"
    assert lines[1].startswith(f"tiny: logits:12 ({where['logits:12']}): thumb.webp has ")
    assert lines[2] == "checked 7 units: 2 corrupt removed (run the job again to re-render them)"
    assert not (store / where["blocks.10:6"]).exists() and not (store / where["logits:12"]).exists()
    assert hidden(store) == []
    states = {u["unit"]: u["state"] for u in manifest(store)["units"]}
    assert states["blocks.10:6"] == states["logits:12"] == "pending"  # the site shows them as pending
    code, lines, _ = run_cli(capsys, "verify", "--flows", str(flows))
    assert code == 0 and lines == ["checked 5 units: 0 corrupt"]

    code, lines, err = run_cli(capsys, "run", "tiny", "--flows", str(flows))
    assert code == 0, err
    assert "tiny: 2 rendered, 5 cached, 0 failed" in lines[-1]
    after = meta_stats(store)
    assert {p: after[p] for p in before if p not in (where["blocks.10:6"], where["logits:12"])} == {
        p: s for p, s in before.items() if p not in (where["blocks.10:6"], where["logits:12"])}


@pytest.mark.slow
def test_garbled_manifest_is_reported_and_rewritten(store_copy, capsys):
    store, flows = store_copy
    (store / "manifests" / "tiny.json").write_text('{"schema": 1, "units": [')
    code, lines, _ = run_cli(capsys, "verify", "--flows", str(flows))
    assert code == 1 and lines[0].startswith("tiny: manifest ") and "is not valid JSON" in lines[0]
    before = meta_stats_from_disk(store)
    code, lines, err = run_cli(capsys, "run", "tiny", "--flows", str(flows))
    assert code == 0 and "all 7 units are cached" in lines[-1], err
    assert manifest(store)["counts"] == {"done": 7, "pending": 0, "failed": 0}
    assert meta_stats_from_disk(store) == before


def meta_stats_from_disk(store: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in (store / MODEL).rglob("meta.json")}


# -- the store alone: no rendering -----------------------------------------------------------------

K1 = "1" * 64


def _unit(tmp_path: Path) -> tuple[Store, str]:
    store = Store(tmp_path)
    relative = f"m/l/c0001@{K1[:12]}"

    def fill(folder):
        for name in ("image.png", "image.webp", "thumb.webp"):
            (folder / name).write_bytes(name.encode())
        return {"schema": 1, "key": K1, "status": "done",
                "files": {"image": "image.png", "image_web": "image.webp", "thumb": "thumb.webp"}}

    store.write_unit(relative, fill)
    return store, relative


def _meta(files) -> dict:
    return {"schema": 1, "key": K1, "status": "done", "files": files}


@pytest.mark.parametrize("meta, problem", [
    ([1, 2, 3], "meta.json is not a JSON object"),
    ("text", "meta.json is not a JSON object"),
    (_meta("image.png"), "meta.json has no valid 'files' mapping"),
    (_meta({"image": {"sha256": "00"}}), "meta.json has a bad 'image' file entry"),
    (_meta({"image": [3]}), "meta.json has a bad 'image' file entry"),
    (_meta({"image": {"path": "../../../etc/hostname", "sha256": "0", "bytes": 1}}),
     "meta.json: 'image' path escapes the unit folder"),
    (_meta({}), "meta.json lists no files"),
    ({**_meta({}), "schema": 2}, "meta.json: schema: must be 1, got 2"),
    ({**_meta({}), "status": None}, "meta.json: status: must be 'done' or 'failed', got None"),
])
def test_malformed_meta_is_a_readable_problem_not_a_crash(tmp_path, meta, problem):
    store, relative = _unit(tmp_path)
    (tmp_path / relative / "meta.json").write_text(json.dumps(meta))
    assert store.problems(relative) == [problem]
    assert store.is_done(relative, K1, verify=True) is False


def test_disk_full_while_writing_a_manifest_keeps_the_old_one(tmp_path, monkeypatch):
    import featvis_pipeline.store as store_module

    store = Store(tmp_path)
    store.write_manifest("job", {"units": ["old"]})

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store_module.os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        store.write_manifest("job", {"units": ["new"]})
    monkeypatch.undo()
    assert json.loads(store.manifest_path("job").read_text()) == {"units": ["old"]}
    assert sorted(p.name for p in (tmp_path / "manifests").iterdir()) == ["job.json"]


@pytest.mark.slow
def test_disk_full_on_the_command_line_is_one_line(store_copy, capsys, monkeypatch):
    import featvis_pipeline.store as store_module

    store, flows = store_copy
    before = (store / "manifests" / "tiny.json").read_bytes()

    def full(path, data, fault=""):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(store_module, "write_json_atomic", full)
    code, _, err = run_cli(capsys, "run", "tiny", "--flows", str(flows))
    assert code == 1
    [line] = err.splitlines()
    assert line.startswith("featvis: error: [Errno 28] No space left on device"), err
    assert (store / "manifests" / "tiny.json").read_bytes() == before
    assert hidden(store) == []


# -- item 1 of issue 13: --repair never removes anything the store's layout does not name ------------------


@pytest.mark.parametrize("path", ["../../elsewhere", "__ELSEWHERE__", "", ".", "..", "efficientnet_lite0/..",
                                  "efficientnet_lite0/blocks.4/../../../elsewhere", "/", "manifests",
                                  "efficientnet_lite0/blocks.4/c0000@000000000000/../../.."])
def test_verify_repair_never_deletes_outside_the_store(tmp_path, capsys, path):
    """A manifest entry marked done whose path climbs out, is absolute, empty or names a store folder: the
    manifest is reported (and with --repair removed) as a whole; no folder it names is touched."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "keep").mkdir(parents=True)
    (elsewhere / "keep" / "thesis.tex").write_text("precious")
    store = tmp_path / "a" / "b" / "store"
    (store / "manifests").mkdir(parents=True)
    (store / "efficientnet_lite0" / "blocks.4").mkdir(parents=True)
    (store / "efficientnet_lite0" / "model.json").write_text("{}")
    key = "ab" * 32
    unit = {"unit": "blocks.4:0", "layer": "blocks.4", "kind": "channel", "index": 0, "label": "x", "key": key,
            "state": "done", "path": path.replace("__ELSEWHERE__", str(elsewhere)), "error": None}
    manifest = {"schema": 1, "job": "tiny", "model": MODEL, "preset": "fast", "settings": {}, "updated": "",
                "counts": {"done": 1}, "units": [unit]}
    (store / "manifests" / "tiny.json").write_text(json.dumps(manifest))
    flows = tmp_path / "flows.yaml"
    flows.write_text(TINY_JOB.format(store=store, batch=4, extra=""))
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))

    code, lines, err = run_cli(capsys, "verify", "--flows", str(flows))
    assert code == 1 and err == "" and "is not a unit folder of this store" in lines[0], lines
    code, lines, err = run_cli(capsys, "verify", "--repair", "--flows", str(flows))
    assert code == 0 and err == "", (lines, err)
    after = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert set(before) - set(after) == {"a/b/store/manifests/tiny.json"}, "--repair removed more than the manifest"
    assert (elsewhere / "keep" / "thesis.tex").read_text() == "precious"
    code, lines, _ = run_cli(capsys, "verify", "--flows", str(flows))
    assert code == 0 and lines[-1] == "checked 0 units: 0 corrupt"


def test_sweep_ignores_names_it_did_not_write(tmp_path):
    """A store's own `.…~….tmp` names: a name with too few parts is not a crash, a link is removed, not followed."""
    import socket

    store = Store(tmp_path / "store")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("x")
    folder = tmp_path / "store" / "m" / "l"
    folder.mkdir(parents=True)
    (folder / f".a~{socket.gethostname()}.tmp").mkdir()  # one part short: the old sweep raised IndexError
    (folder / ".b~trash~1234.tmp").symlink_to(outside)
    assert store.sweep() == 1
    assert (outside / "keep.txt").exists() and not (folder / ".b~trash~1234.tmp").is_symlink()
