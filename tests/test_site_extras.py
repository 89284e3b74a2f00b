"""The gallery's real-image extras from an untrusted store: examples, explain page, circuit links, dives.

A synthetic store gets a hand-written extras manifest mixing good entries with hostile ones (markup in
names, a thumbnail whose checksum fails, paths outside the layout); the build must show the good ones,
escape every string and leave the rest out with a warning.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

from featvis_site.build import build_site
from featvis_site.store_reader import read_store
from bench.synthetic import SyntheticModel, make_store
from test_site_hostile import injected

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'
ID = "0123456789abcdef"


def _webp(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(out, format="WEBP")
    return out.getvalue()


def _put(root: Path, relative: str, data: bytes) -> dict:
    (root / relative).parent.mkdir(parents=True, exist_ok=True)
    (root / relative).write_bytes(data)
    return {"path": relative.rsplit("/", 1)[-1], "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _hostile_store(root: Path) -> tuple[Path, dict]:
    store = make_store(root / "store", [SyntheticModel(render={"block1": 4, "block2": 4}, logits=6, pending_every=0,
                                                       failed=0, corrupt=0, diversity=1)])
    atlas = read_store(store)
    units = {u.unit: u for u in atlas.units}
    good = _put(store, f"examples/images/{ID}/v0000.webp", _webp((200, 10, 10)))
    rotten = _put(store, f"examples/images/{ID}/abcdef12-v0003.webp", _webp((10, 200, 10)))
    with open(store / f"examples/images/{ID}/abcdef12-v0003.webp", "r+b") as handle:  # bit rot after the run
        handle.seek(20)
        handle.write(b"\x00\x01\x02\x03")
    explain = f"examples/explain/toynet/{ID}@aaaaaaaaaaaa"
    files = {role: _put(store, f"{explain}/{role}.webp", _webp((9, 9, 9 * i)))
             for i, role in enumerate(("view", "saliency", "smoothgrad"))}
    files["maps"] = [{**_put(store, f"{explain}/maps/c0001.webp", _webp((50, 50, 50))), "path": "maps/c0001.webp"}]
    (store / explain / "meta.json").write_text(json.dumps({
        "status": "done", "image": ID, "name": EVIL, "layer": "block1", "files": files,
        "top5": [{"class": 3, "label": EVIL, "p": 0.5}], "channels": [{"channel": 1, "mean": 2.5}]}))
    circuit = "circuits/toynet/block2@00000000000000aa.json"
    (store / "circuits/toynet").mkdir(parents=True)
    (store / circuit).write_text(json.dumps({"layer": "block2", "previous": "block1",
                                             "upstream": {"0": [[1, 1.0], [2, -0.5], [999, 0.1]]},
                                             "downstream": {"1": [[0, 1.0]]}}))
    manifest = {
        "schema": 1, "job": "demo", "model": "toynet",
        "examples": {
            "crop_key": "abcdef12", "count": 7, "folder": "x",
            "images": [{"id": ID, "name": EVIL}],
            "units": {"block1:0": {"top": [[2.0, ID, 0], [1.0, ID, 3], [0.5, "../../etc", 0]], "bottom": []},
                      "nonexistent:1": {"top": [[1.0, ID, 0]], "bottom": []}},
            "thumbs": {f"examples/images/{ID}/v0000.webp": {k: good[k] for k in ("sha256", "bytes")},
                       f"examples/images/{ID}/abcdef12-v0003.webp": {k: rotten[k] for k in ("sha256", "bytes")}},
        },
        "explain": {"layer": "block1", "images": {ID: explain}},
        "circuits": {"block2": circuit, "block1": "../../../etc/passwd"},
        "zoom": {"logits:3": "zoom/../../outside@aaaaaaaaaaaa"},
    }
    (store / "examples/manifests").mkdir(parents=True)
    (store / "examples/manifests/demo.json").write_text(json.dumps(manifest))
    return store, units


def _record(site: Path, unit) -> dict:
    return json.loads((site / "media" / unit.path / "unit.json").read_text())


def test_extras_are_shown_escaped_and_checked(tmp_path):
    store, units = _hostile_store(tmp_path)
    report = build_site(store, tmp_path / "site")
    site = report.site_dir
    record = _record(site, units["block1:0"])
    assert [e["score"] for e in record["examples"]["top"]] == [2.0]  # the rotten crop and the bad id are left out
    assert record["examples"]["top"][0]["href"].endswith(f"/explain/#img-{ID}")
    assert (site / "media" / units["block1:0"].path / record["examples"]["top"][0]["src"]).resolve().is_file()
    up = _record(site, units["block2:0"])["circuits"]["upstream"]
    assert [link["unit"] for link in up] == ["block1:1", "block1:2"]  # channel 999 has no unit: no link
    assert up[1]["weight"] == -0.5 and "#k=" in up[0]["href"]
    assert _record(site, units["block1:1"])["circuits"]["downstream"][0]["unit"] == "block2:0"
    page = (site / "models/toynet/explain/index.html").read_text()
    assert "<script>alert" not in page and injected(page) == []  # no element has an on* attribute
    assert EVIL in html.unescape(re.sub(r"<[^>]*>", " ", page))  # shown as the very text it is
    assert 'href="../block1/#k=' in page  # the activation map links to its channel's lightbox
    warnings = " ".join(report.warnings)
    assert "fails its sha256" in warnings and "circuit links of block1 left out" in warnings
    assert "zoom dive logits:3 left out" in warnings
    assert not (site / "media/etc").exists()


def test_site_imports_neither_torch_nor_prefect():
    code = ("import sys, featvis_site.build, featvis_site.cli, featvis_site.examples_pages; "
            "bad = [m for m in ('torch', 'prefect') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_links_in_the_extras_are_never_followed(tmp_path):
    """Issue 19, item 2.4: a symlinked examples/manifests/*.json (or any linked file of the extras) was read
    and its content shown on the explain page. A link is left out with a warning, wherever it is."""
    store, units = _hostile_store(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    manifests = store / "examples/manifests"
    real = json.loads((manifests / "demo.json").read_text())
    # 1. the manifest itself is a link to a file outside the store, which names a secret image
    secret = dict(real, job="secret-job")
    (outside / "elsewhere.json").write_text(json.dumps(secret))
    (manifests / "demo.json").unlink()
    (manifests / "demo.json").symlink_to(outside / "elsewhere.json")
    report = build_site(store, tmp_path / "site")
    assert not (report.site_dir / "models/toynet/explain").exists()
    assert any("demo.json" in w and "symbolic link" in w for w in report.warnings), report.warnings
    # 2. the manifest is real, but the explain image's meta.json and a thumbnail are links (to the very bytes)
    (manifests / "demo.json").unlink()
    (manifests / "demo.json").write_text(json.dumps(real))
    folder = store / real["explain"]["images"][ID]
    (outside / "meta.json").write_bytes((folder / "meta.json").read_bytes())
    (folder / "meta.json").unlink()
    (folder / "meta.json").symlink_to(outside / "meta.json")
    thumb = store / f"examples/images/{ID}/v0000.webp"
    (outside / "v0000.webp").write_bytes(thumb.read_bytes())
    thumb.unlink()
    thumb.symlink_to(outside / "v0000.webp")
    report = build_site(store, tmp_path / "site")
    assert not (report.site_dir / "models/toynet/explain").exists()
    record = _record(report.site_dir, units["block1:0"])
    assert record.get("examples", {}).get("top", []) == []
    assert not [p for p in report.site_dir.rglob("*") if p.is_symlink()]
    # 3. the whole examples folder is a link
    (outside / "examples").mkdir()
    (store / "examples").rename(outside / "examples" / "moved")
    (store / "examples").symlink_to(outside / "examples" / "moved")
    report = build_site(store, tmp_path / "site")
    assert any("symbolic link" in w for w in report.warnings) and not (report.site_dir / "media/examples").exists()
