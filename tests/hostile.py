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
