"""`featvis site build` printed ESC/BEL sequences raw from manifest file names and the extras manifest's `job`
(issue 19, item 2.9): a shared store could clear the screen, retitle the terminal or hide a warning with CR
and bidi overrides. Everything the site prints from input goes through `text.printable`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest

from featvis_site.cli import main
from featvis_site.text import printable
from bench.synthetic import SyntheticModel, make_store

EVIL = "\x1b]0;owned\x07\x1b[2J\x1b[31mred\r\x08\x01\x7f\x85\x9b\u202eevil\u2066\u200f\u2028x"  # file names: no NUL, no /
EVIL_TEXT = EVIL + "\x00\n"
#: what no printed line may hold: C0 but newline, DEL, C1, and the Unicode controls that reorder text
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def test_printable_escapes_every_control_and_keeps_text() -> None:
    controls = [chr(c) for c in range(0x100) if unicodedata.category(chr(c)) == "Cc"]
    controls += [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf" and
                 unicodedata.bidirectional(chr(c)) in ("LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI",
                                                       "LRM", "RLM", "ALM")]
    for char in controls:
        out = printable(f"a{char}b")
        assert RAW.search(out.replace("\n", "")) is None and out.startswith("a") and out.endswith("b"), repr(char)
        assert "\\" in out  # shown, not dropped
    assert printable("plain é 日本 – ok") == "plain é 日本 – ok"
    assert printable("two\nlines") == "two\\x0alines" and printable("two\nlines", newlines=True) == "two\nlines"


def _clean(text: str) -> None:
    assert RAW.search(text.replace("\n", "")) is None, repr(RAW.search(text.replace("\n", "")))


def test_site_build_prints_no_control_characters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = make_store(tmp_path / "store", [SyntheticModel(render={"block1": 2}, logits=2, pending_every=0, failed=0,
                                                           corrupt=0, diversity=1, video=False, filters=False)])
    extras = store / "examples" / "manifests"
    extras.mkdir(parents=True)
    (extras / f"{EVIL}.json").write_text("{not json")  # a bad extras manifest: its file name is in the warning
    (extras / "demo.json").write_text(json.dumps({
        "schema": 1, "job": f"job{EVIL_TEXT}", "model": "toynet",
        "examples": {"crop_key": "abcdef12", "images": [], "thumbs": {},
                     "units": {"block1:0": {"top": [[1.0, "0123456789abcdef", 0]], "bottom": []}}},
        "zoom": {f"logits:1{EVIL}": "zoom/../../etc@aaaaaaaaaaaa"},
        "circuits": {f"block1{EVIL}": "circuits/x/y@0000000000000000.json"},
    }))
    code = main(["build", "--store", str(store), "--out", str(tmp_path / "site")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    _clean(captured.out + captured.err)
    warnings = captured.err.splitlines()
    assert len([w for w in warnings if "\\x1b]0;owned\\x07" in w]) >= 4  # each one reported, escaped, on one line

    # a store manifest that cannot be read: the error names the file, escaped, on one line
    (store / "manifests" / f"bad{EVIL}.json").write_text("[]")
    code = main(["build", "--store", str(store), "--out", str(tmp_path / "site")])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    _clean(captured.err)
    assert len(captured.err.strip().splitlines()) == 1 and "bad\\x1b]0;owned" in captured.err
