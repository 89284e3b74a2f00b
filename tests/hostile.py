"""Hostile stores for the security tests: markup in every string a store or a model hands the gallery.

Every payload, if it ever ran or became an element, would mark the page: an element of class `pwned`, a
`window.__pwned` counter, or a dialog (alert). The checks look for all three.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.synthetic import SyntheticModel, make_store

MARK = "window.__pwned=(window.__pwned||0)+1"
PAYLOADS = [
    f'<img src=x class=pwned onerror="{MARK};alert(1)">',
    f'"><svg class=pwned onload="{MARK};alert(2)">',
    f"'><script class=pwned>{MARK};alert(3)</script>",
    f"</title><script class=pwned>{MARK};alert(4)</script>",
    "x {: onclick=alert(5) .pwned }",
    "[click](javascript:alert(6))",
    '<a class=pwned href="javascript:alert(7)">link</a>',
    f"&lt;img src=x class=pwned onerror={MARK}&gt;",
    "${alert(9)}{{7*7}}{% raw %}",
    "\u202e<b class=pwned>rtl</b>\x00\x1b[31m",
    "\x02wzxhzdk:0\x03\x02klzzwxh:1\x03",  # Python-Markdown's own placeholders
]
HOSTILE_MODEL = f"toy<img src=x class=pwned onerror='{MARK};alert(10)'>net"


def payload(i: int) -> str:
    return PAYLOADS[i % len(PAYLOADS)]


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def hostile_store(root: Path) -> Path:
    """A store whose every free-text field carries markup (names, labels, classes, settings, errors,
    timings, score names), built from the synthetic store so its media are real and verify."""
    store = make_store(root, [
        SyntheticModel(name=HOSTILE_MODEL, render={"block1": 4}, logits=8, other_kinds=True, failed=1, corrupt=0,
                       pending_every=5, diversity=2),
        SyntheticModel(name="othernet", layers={"stage2": 4}, render={"stage2": 2}, logits=[0, 2, 4], diversity=1,
                       filters=False, corrupt=0, failed=0, pending_every=0),
    ])

    def manifest(data: dict[str, Any]) -> None:
        data["preset"] = payload(0)
        data["updated"] = payload(1)
        data["settings"] = {payload(i): payload(i + 1) for i in range(len(PAYLOADS))}
        data["settings"]["steps"] = payload(2)
        for i, unit in enumerate(data["units"]):
            unit["label"] = payload(i)
            unit["unit"] = f"{unit['unit']}{payload(i + 3)}"
            if unit["state"] == "failed":
                unit["error"] = payload(i + 4)

    for path in (store / "manifests").glob("*.json"):
        _edit(path, manifest)
    for path in store.rglob("meta.json"):
        def meta(data: dict[str, Any], n=len(str(path))) -> None:
            data["label"] = payload(n)
            data["created"] = payload(n + 1)
            data["error"] = payload(n + 2)
            data["timings"] = {"device": payload(n + 3), "render_s": payload(n + 4), "steps": payload(n + 5)}
            data["scores"] = {payload(n + 6): 0.5, "activation": 1.0}
            data[payload(n + 7)] = payload(n + 8)
        _edit(path, meta)
    for path in store.glob("*/model.json"):
        def card(data: dict[str, Any]) -> None:
            data["classes"] = [payload(i) + f" {i}" for i in range(len(data["classes"]))]
            data["layers"] += [{"name": payload(i)} for i in range(len(PAYLOADS))]
            data["source"], data["weights"] = payload(1), payload(2)
        _edit(path, card)
    return store


INJECTED = """() => ({
  pwned: window.__pwned || 0,
  elements: document.querySelectorAll('.pwned, script.pwned, [onerror], [onload]:not(body), [onclick]').length,
  javascript: Array.from(document.querySelectorAll('a[href]')).filter(a => /^\\s*javascript:/i.test(a.getAttribute('href'))).length,
})"""


# ------------------------------------------------------------------------------------ Markdown payloads
# HTML-escaping leaves these alive when the page then goes through Markdown (issue 19, item 2.1): links and
# images to javascript:, attr_list braces, autolinks, bare links, raw HTML and md_in_html inside Markdown.
MD_PAYLOADS = [
    "m [clickme](javascript:alert(11)) *em*{: onmouseover=alert(12) }",
    "![img](javascript:alert(13)) ![x](x){: onerror=alert(14) }",
    "[ref][r]\n\n[r]: javascript:alert(15)",
    "**b**{: .pwned onclick=alert(16) } _i_{: onmouseover='alert(17)' }",
    "<javascript:alert(18)> <http://example.invalid/?q=alert(19)> <mail@example.invalid>",
    "www.example.invalid/alert(20) http://example.invalid/alert(21) javascript:alert(22)",
    '<a class=pwned href="javascript:alert(23)">raw</a> <em onmouseover=alert(24)>raw</em>',
    '<div markdown="1">[md](javascript:alert(25)) *x*{: onmouseover=alert(26) }</div>',
    "\n\n# heading {: onclick=alert(27) }\n\n!!! note \"x\"\n    [a](javascript:alert(28))\n",
    "| a | b |\n|---|---|\n| [t](javascript:alert(29)) | c |",
    "`code` \\[esc\\](javascript:alert(30)) &#91;ent&#93;(javascript:alert(31))",
    "??? note\n    [d](javascript:alert(32))\n\n- [l](javascript:alert(33))\n1. [o](javascript:alert(34))",
]
MD_MODEL = MD_PAYLOADS[0]


def md_payload(i: int) -> str:
    return MD_PAYLOADS[i % len(MD_PAYLOADS)]


def _file(root: Path, relative: str, data: bytes) -> dict[str, Any]:
    import hashlib

    (root / relative).parent.mkdir(parents=True, exist_ok=True)
    (root / relative).write_bytes(data)
    return {"path": relative.rsplit("/", 1)[-1], "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def markdown_store(root: Path, payload=md_payload, *, video: bool = True, index=None, number=None) -> Path:
    """A store with a Markdown payload in every string the gallery shows, on every page kind: the model name
    (home, model, layer, logits, compare, explain), the card's layers, source and classes, the manifest's
    preset, settings, labels, captions and errors, and the extras: an explain image (name, layer, top-5
    labels) and an endless dive (label). `payload(i)` picks the i-th string (tests/hypothesis pass others);
    `index(i)`, when given, the i-th unit's index, and `number(i)` the i-th number of meta.json scores,
    timings and activations and of the extras (scores, weights, means): hostile numbers (NaN, infinities,
    huge values); `video=False` is faster (no H.264)."""
    from featvis_pipeline.storeformat import model_dir

    store = make_store(root, [
        SyntheticModel(name=payload(0), layers={"block1": 4, "block_2_": 4}, render={"block1": 3, "block_2_": 2},
                       logits=4, other_kinds=True, failed=1, corrupt=0, pending_every=4, diversity=1, filters=False,
                       video=video),
        SyntheticModel(name=payload(1), layers={"stage2": 4}, render={"stage2": 2}, logits=[0, 2], diversity=1,
                       filters=False, corrupt=0, failed=0, pending_every=0, video=False),
    ])

    def manifest(data: dict[str, Any]) -> None:
        data["preset"] = payload(2)
        data["updated"] = payload(3)
        data["settings"] = {payload(i): payload(i + 1) for i in range(4)}
        data["settings"]["steps"] = payload(5)
        data["settings"]["nested"] = {"deep": {payload(6): [payload(7), 1e308, -0.0, None, True]}}
        for i, unit in enumerate(data["units"]):
            unit["label"] = payload(i + 8)
            unit["caption"] = payload(i + 9)
            if unit["state"] == "failed":
                unit["error"] = payload(i + 10)
            if index is not None:
                unit["index"] = index(i)

    for path in (store / "manifests").glob("*.json"):
        _edit(path, manifest)
    if number is not None:
        for n, path in enumerate(sorted(store.rglob("meta.json"))):
            def meta(data: dict[str, Any], n=n) -> None:
                data["scores"] = {"activation": number(n), payload(n + 30): number(n + 1)}
                data["timings"] = {"render_s": number(n + 2), "steps": number(n + 3), "device": payload(n + 31)}
                data["activation"] = {"start": number(n + 4), "final": number(n + 5), "best": number(n + 6),
                                      "history": [number(n + k) for k in range(7, 12)]}
            _edit(path, meta)
    number = number or (lambda i: float(i))
    for path in store.glob("*/model.json"):
        def card(data: dict[str, Any]) -> None:
            data["classes"] = [payload(i + 11) for i in range(min(len(data["classes"]), 50))]
            data["layers"] += [{"name": payload(i + 12)} for i in range(3)]
            data["source"], data["weights"] = payload(13), payload(14)
        _edit(path, card)

    # extras of the first model: one explained image and one dive, every string a payload
    from PIL import Image
    import io

    def webp(shade: int) -> bytes:
        out = io.BytesIO()
        Image.new("RGB", (32, 32), (shade, 40, 200 - shade)).save(out, format="WEBP")
        return out.getvalue()

    name = payload(0)
    folder = model_dir(name)
    ident = "0123456789abcdef"
    explain = f"examples/explain/{folder}/{ident}@aaaaaaaaaaaa"
    files: dict[str, Any] = {role: _file(store, f"{explain}/{role}.webp", webp(30 * i))
                             for i, role in enumerate(("view", "saliency", "smoothgrad"))}
    files["maps"] = [{**_file(store, f"{explain}/maps/c0001.webp", webp(90)), "path": "maps/c0001.webp"}]
    (store / explain / "meta.json").write_text(json.dumps({
        "status": "done", "image": ident, "name": payload(15), "layer": "block1", "files": files,
        "top5": [{"class": i, "label": payload(16 + i), "p": 0.1} for i in range(5)],
        "channels": [{"channel": 1, "mean": number(40)}]}))
    zoom = f"zoom/{folder}/k0002@bbbbbbbbbbbb"
    video = next((p.read_bytes() for p in store.rglob("anim.mp4")), b"\x00\x00\x00\x18ftypmp42 not a real video")
    zoom_files = {"mp4": _file(store, f"{zoom}/dive.mp4", video), "poster": _file(store, f"{zoom}/poster.webp", webp(7))}
    (store / zoom / "meta.json").write_text(json.dumps({"status": "done", "index": 2, "label": payload(21),
                                                         "files": zoom_files}))
    # a real example image of the first unit, and circuit links between the two rendered layers
    thumb = f"examples/images/{ident}/v0000.webp"
    recorded = _file(store, thumb, webp(120))
    manifests = [json.loads(p.read_text()) for p in (store / "manifests").glob("*.json")]
    units = next(m["units"] for m in manifests if m["model"] == name)
    circuit = f"circuits/{folder}/block_2_@00000000000000aa.json"
    (store / circuit).parent.mkdir(parents=True, exist_ok=True)
    (store / circuit).write_text(json.dumps({"layer": "block_2_", "previous": "block1",
                                             "upstream": {"0": [[1, number(41)], [2, number(42)]]},
                                             "downstream": {"1": [[0, number(43)]]}}))
    (store / "examples/manifests").mkdir(parents=True, exist_ok=True)
    (store / "examples/manifests/demo.json").write_text(json.dumps({
        "schema": 1, "job": payload(22), "model": name,
        "examples": {"crop_key": "abcdef12", "count": 1, "folder": payload(25),
                     "images": [{"id": ident, "name": payload(24)}],
                     "units": {units[0]["unit"]: {"top": [[number(44), ident, 0]], "bottom": [[number(45), ident, 0]]}},
                     "thumbs": {thumb: {"sha256": recorded["sha256"], "bytes": recorded["bytes"]}}},
        "explain": {"layer": payload(23), "images": {ident: explain}},
        "circuits": {"block_2_": circuit},
        "zoom": {"logits:2": zoom},
    }))
    return store
