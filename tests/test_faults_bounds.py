"""Input read with bounds, and what used to be silently wrong or a traceback (issue 19, items 2.5, 2.7, 2.8, 2.9):

* flows.yaml: only a regular file (no FIFO, /dev/zero), at most 1 MiB (a 2 GB sparse file is refused by its
  size), its expanded document bounded (alias bombs anywhere), no key twice (jobs, job fields), and no
  error message that repr()s a huge value;
* `--set` values: the same loader;
* before any server or render: a Ray runner without prefect-ray, `featvis examples` for a job without
  extras, `--site /etc`;
* a layer named like an absolute path stays inside `featvis render --out`;
* `featvis status` escapes control characters of the store path (and everything else it prints).
"""

from __future__ import annotations

import os
import resource
import time
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import pytest
import yaml

from conftest import TINY_JOB
from featvis_core import FeatvisError


def run(argv: list[str]) -> tuple[int, str, str]:
    from featvis_pipeline.cli import main

    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def one_error_line(code: int, err: str, phrase: str = "") -> str:
    assert code == 2, (code, err[-2000:])
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("featvis: error: ") and "Traceback" not in err, err[-2000:]
    assert len(lines[0]) < 600 and phrase in lines[0], lines[0]
    assert all(ch.isprintable() for ch in lines[0]), repr(lines[0])
    return lines[0]


def bomb(levels: int = 9, width: int = 10, item: str = "x") -> str:
    """Billion laughs: `levels` anchors, each a list of `width` aliases of the one before (width**levels)."""
    lines = [f"  l0: &l0 [{', '.join([item] * width)}]"]
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines)


JOB = "    model: efficientnet_lite0\n    layers: {{blocks.4: 0-2}}\n    store: {store}\n"


def alias_bombs(store: Path) -> dict[str, str]:
    """An alias bomb in every place of a flows.yaml (the issue saw logits: and layers:)."""
    head = f"x-bomb:\n{bomb()}\n"
    job = JOB.format(store=store)
    return {
        "logits": head + f"jobs:\n  tiny:\n{job}    logits: *l8\n",
        "layers": head + f"jobs:\n  tiny:\n    model: efficientnet_lite0\n    store: {store}\n    layers: {{blocks.4: *l8}}\n",
        "overrides": head + f"jobs:\n  tiny:\n{job}    overrides: {{augment: {{scale: *l8}}}}\n",
        "description": head + f"jobs:\n  tiny:\n{job}    description: *l8\n",
        "defaults": f"defaults:\n  x:\n{bomb()}\n  y: *l8\njobs:\n  tiny:\n{job}",
        "top level": head + f"jobs:\n  tiny:\n{job}other: *l8\n",
        "job name": head + "jobs: *l8\n",
        "mapping bomb": "a: &a {k0: x, k1: x, k2: x, k3: x, k4: x, k5: x, k6: x, k7: x, k8: x, k9: x}\n" + "".join(
            f"{n}: &{n} {{" + ", ".join(f"k{i}: *{p}" for i in range(10)) + "}\n"
            for p, n in zip("abcdefgh", "bcdefghi")) + f"jobs:\n  tiny:\n{job}    overrides: *i\n",
        "recursive": f"jobs:\n  tiny:\n{job}    logits: &r [1, *r]\n",
    }


def test_flows_file_is_read_only_when_regular_and_small(tmp_path, no_server):
    """/dev/zero, a FIFO and a 2 GB sparse flows.yaml: one line each, in bounded time and memory."""
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    sparse = tmp_path / "sparse.yaml"
    with open(sparse, "wb") as handle:
        handle.truncate(2 << 30)
    big = tmp_path / "big.yaml"
    big.write_text("jobs: {}\n#" + "x" * (1 << 20))
    (tmp_path / "folder.yaml").mkdir()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cases = {"/dev/zero": "not a regular file", str(fifo): "not a regular file", str(sparse): "2,147,483,648 bytes",
             str(big): "more than the 1,048,576", str(tmp_path / "folder.yaml"): "is a folder",
             "/dev/null": "not a regular file"}
    for path, phrase in cases.items():
        for argv in (["verify", "--flows", path], ["run", "tiny", "--flows", path], ["status", "tiny", "--flows", path],
                     ["examples", "tiny", "--flows", path], ["run", "tiny", "--dry-run", "--flows", path]):
            began = time.monotonic()
            code, out, err = run(argv)
            one_error_line(code, err, phrase)
            assert time.monotonic() - began < 5, argv
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 200_000  # KiB: nothing the size of the files


@pytest.mark.parametrize("where", list(alias_bombs(Path("/nonexistent"))))
def test_alias_bombs_anywhere_are_one_line_before_they_expand(where, tmp_path, no_server):
    from featvis_pipeline.jobs import load_jobs

    flows = tmp_path / "flows.yaml"
    flows.write_text(alias_bombs(tmp_path / "store")[where])
    began = time.monotonic()
    with pytest.raises(FeatvisError) as error:
        load_jobs(flows)
    assert time.monotonic() - began < 5
    message = str(error.value)
    assert ("expands to more than" in message or "contains it" in message) and len(message) < 300, message
    code, _, err = run(["verify", "--flows", str(flows)])
    one_error_line(code, err)
    assert not (tmp_path / "store").exists()


def test_aliases_that_stay_small_still_work(tmp_path):
    """A shared overrides block or channel list is a fair use of aliases."""
    from featvis_pipeline.jobs import load_jobs

    flows = tmp_path / "flows.yaml"
    flows.write_text(f"""
defaults:
  store: {tmp_path / 's'}
  overrides: &common {{size: 48, steps: 8}}
jobs:
  a: {{model: efficientnet_lite0, logits: &few [0, 1, 2], overrides: *common}}
  b: {{model: efficientnet_lite0, layers: {{blocks.4: *few}}, overrides: *common}}
""")
    jobs = load_jobs(flows)
    assert jobs["a"].logits == [0, 1, 2] and jobs["b"].layers == {"blocks.4": [0, 1, 2]}
    assert jobs["b"].overrides == {"size": 48, "steps": 8}


def test_a_huge_value_in_an_error_is_cut_not_repred_whole(tmp_path):
    """A value just under every bound (a list of 20,000 lists, strings of half a megabyte) gives a short line."""
    from featvis_pipeline.jobs import load_jobs

    store = tmp_path / "store"
    job = JOB.format(store=store)
    pairs, ys, bidi, nines, escs = ", ".join(["[1, 2]"] * 20_000), "y" * 500_000, "\u202e" * 200_000, "9 " * 300_000, \
        "\\e" * 100_000
    cases = {
        "logits": f"jobs:\n  tiny:\n{job}    logits: [{pairs}]\n",
        "layers": f"jobs:\n  tiny:\n    model: efficientnet_lite0\n    store: {store}\n    layers: {ys}\n",
        "model": f"jobs:\n  tiny:\n    model: m{bidi}\n    logits: [1]\n",
        "cron": f"jobs:\n  tiny:\n{job}    cron: '{nines}'\n",
        "name": f'jobs:\n  "{escs}":\n{job}',
    }
    for field, text in cases.items():
        flows = tmp_path / f"{field}.yaml"
        flows.write_text(text)
        began = time.monotonic()
        with pytest.raises(FeatvisError) as error:
            load_jobs(flows)
        message = str(error.value)
        assert len(message) <= 2000 and "\n" not in message and all(ch.isprintable() for ch in message), (field, message[:300])
        assert time.monotonic() - began < 10, field


@pytest.mark.parametrize("text, phrase", [
    ("jobs:\n  tiny: {model: efficientnet_lite0, logits: [1]}\n  tiny: {model: efficientnet_lite0, logits: [2]}\n",
     "found the key 'tiny' twice (line 2 and line 3)"),
    ("jobs:\n  tiny:\n    model: efficientnet_lite0\n    logits: [1]\n    logits: [2]\n", "the key 'logits' twice"),
    ("jobs:\n  tiny:\n    model: efficientnet_lite0\n    logits: [1]\n    overrides: {steps: 8, steps: 9}\n",
     "the key 'steps' twice"),
    ("jobs: {}\njobs: {}\n", "the key 'jobs' twice"),
    ("defaults: {store: a}\ndefaults: {store: b}\njobs: {}\n", "the key 'defaults' twice"),
    ("jobs:\n  tiny:\n    model: efficientnet_lite0\n    layers: {blocks.4: 0, blocks.4: 1}\n", "'blocks.4' twice"),
    ("jobs:\n  tiny:\n    model: efficientnet_lite0\n    logits: [1]\n    retries: 1\n    retries: 1\n", "'retries' twice"),
])
def test_a_key_given_twice_is_an_error_not_last_one_wins(text, phrase, tmp_path):
    from featvis_pipeline.jobs import load_jobs

    flows = tmp_path / "flows.yaml"
    flows.write_text(text)
    with pytest.raises(FeatvisError, match="twice") as error:
        load_jobs(flows)
    assert phrase in str(error.value), str(error.value)


def test_merge_keys_may_still_be_overridden(tmp_path):
    from featvis_pipeline.jobs import load_jobs

    flows = tmp_path / "flows.yaml"
    flows.write_text(f"defaults: {{store: {tmp_path / 's'}}}\njobs:\n  base: &base {{model: efficientnet_lite0, logits: [1]}}\n"
                     "  tiny:\n    <<: *base\n    logits: [2]\n")
    jobs = load_jobs(flows)
    assert jobs["tiny"].logits == [2] and jobs["base"].logits == [1]


def test_set_values_are_bounded_too(tmp_path, no_server):
    out = tmp_path / "out"
    laughs = "{" + ", ".join(f"k{i}: &a{i} [" + ", ".join([f"*a{i - 1}" if i else "1"] * 10) + "]" for i in range(9)) + "}"
    for value, phrase in [(f"augment={laughs}", "expands to more than"), ("seed=&a [*a]", "--set seed"),
                          ("augment={pad: 1, pad: 2}", "twice"), ("lr=" + "[" * 5000 + "]" * 5000, "--set lr"),
                          ("steps=" + "9" * 100_000, "--set steps")]:
        code, _, err = run(["render", "efficientnet_lite0", "blocks.4:0", "--out", str(out), "--set", value])
        one_error_line(code, err, phrase)
    assert not out.exists()


# -- item 2.7: one line, before any server or render -----------------------------------------------------


def test_a_ray_runner_without_prefect_ray_is_one_line_before_any_work(tmp_path, no_server, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "prefect_ray" else real(name, *a))
    import featvis_pipeline.flows as flows

    monkeypatch.setattr(flows, "plan_job", lambda *a: (_ for _ in ()).throw(AssertionError("planned (loaded a model)")))
    flows_file = tmp_path / "flows.yaml"
    flows_file.write_text(TINY_JOB.format(store=tmp_path / "store", batch=4, extra="    runner: {kind: ray}\n"))
    for argv in (["run", "tiny"], ["examples", "tiny"]):
        code, _, err = run([*argv, "--flows", str(flows_file)])
        if argv[0] == "examples":
            one_error_line(code, err, "has neither examples: nor zoom:")
        else:
            one_error_line(code, err, "needs prefect-ray: pip install prefect-ray")
    from featvis_pipeline.jobs import load_job

    with pytest.raises(FeatvisError, match="prefect-ray"):
        flows.make_runner(load_job(flows_file, "tiny").runner)
    assert not (tmp_path / "store").exists()


def test_examples_for_a_job_without_extras_is_one_line_before_a_server(tmp_path, no_server):
    flows = tmp_path / "flows.yaml"
    flows.write_text(TINY_JOB.format(store=tmp_path / "store", batch=4, extra=""))
    code, _, err = run(["examples", "tiny", "--flows", str(flows)])
    one_error_line(code, err, "has neither examples: nor zoom:")
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("site", ["/etc", "/", "__HOME__", "__STORE__", "__STORE__/site", "__FILE__", "__FULL__"])
def test_site_output_is_refused_before_rendering(site, tmp_path, no_server, monkeypatch):
    import featvis_pipeline.flows as flows

    monkeypatch.setattr(flows, "plan_job", lambda *a: (_ for _ in ()).throw(AssertionError("planned before the guard")))
    store = tmp_path / "store"
    (tmp_path / "afile").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "thesis.tex").write_text("mine")
    site = (site.replace("__HOME__", str(Path.home())).replace("__STORE__", str(store))
            .replace("__FILE__", str(tmp_path / "afile")).replace("__FULL__", str(tmp_path / "full")))
    flows_file = tmp_path / "flows.yaml"
    flows_file.write_text(TINY_JOB.format(store=store, batch=4, extra=""))
    code, _, err = run(["run", "tiny", "--flows", str(flows_file), "--site", site])
    one_error_line(code, err, "--site")
    flows_file.write_text(TINY_JOB.format(store=store, batch=4, extra=f"    site: {site}\n"))
    code, _, err = run(["run", "tiny", "--flows", str(flows_file)])
    one_error_line(code, err, "--site")
    assert (tmp_path / "full" / "thesis.tex").read_text() == "mine"


# -- item 2.8: a layer named like a path stays inside --out ------------------------------------------------

FACTORY = '''
import torch
from torch import nn
from featvis_core import Classifier


def make():
    body = nn.Sequential()
    body.add_module({name!r}, nn.Conv2d(3, 4, 3, padding=1))
    body.add_module("pool", nn.AdaptiveAvgPool2d(1))
    body.add_module("flat", nn.Flatten())
    body.add_module("head", nn.Linear(4, 3))
    return Classifier("pathnet", body, input_size=32, min_size=16, classes=["a", "b", "c"])
'''


@pytest.mark.parametrize("layer", ["__TMP__/abs-target", "a/b/c", "\x1b[31m"])
def test_a_layer_named_like_a_path_writes_only_under_out(layer, tmp_path, monkeypatch):
    """(An absolute name inside tmp_path: the old code wrote there, as it would have written to /etc.)"""
    ident = os.urandom(4).hex()
    if "." in str(tmp_path):
        pytest.skip("a module name cannot contain '.'")
    layer = layer.replace("__TMP__", str(tmp_path))
    module = f"pathnet_{ident}"
    (tmp_path / f"{module}.py").write_text(FACTORY.format(name=layer))
    monkeypatch.syspath_prepend(str(tmp_path))
    work = tmp_path / "work" / "deep" / "er"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    out = tmp_path / "out"
    code, stdout, err = run(["render", f"{module}:make", f"{layer}:0", "--out", str(out), "--steps", "2",
                             "--size", "32", "--set", "frames=2", "--set", "augment={zoom: 1.0}"])
    assert code == 0, err[-2000:]
    assert not (tmp_path / "abs-target").exists()
    written = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "c0000.png" for p in written) and all(out in p.parents for p in written)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", "work", f"{module}.py", "__pycache__"]) or \
        sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", "work", f"{module}.py"])
    assert all(ch.isprintable() for line in stdout.splitlines() + err.splitlines() for ch in line), (stdout, err)


# -- item 2.9: featvis status escapes what it prints -----------------------------------------------------


def test_status_escapes_the_store_path_and_everything_it_prints(tmp_path):
    store = tmp_path / "store\x1b]0;owned\x07\x1b[2J\r\u202eevil\x9b31m"
    flows = tmp_path / "flows.yaml"
    flows.write_text(TINY_JOB.format(store=yaml.safe_dump(str(store)).strip().removesuffix("...").strip(),
                                     batch=4, extra=""))
    for argv in (["status", "tiny"], ["run", "tiny", "--dry-run"], ["verify"]):
        code, out, err = run([*argv, "--flows", str(flows)])
        assert code == 0, (argv, err)
        text = out + err
        assert text.strip(), argv
        assert not any(ch in text for ch in "\x1b\x07\r\u202e\x9b"), (argv, text)
        assert "\\x1b]0;owned\\x07" in text or argv == ["verify"], (argv, text)


def test_printable_escapes_every_control_and_bidi_character():
    from featvis_pipeline.terminal import printable, short

    controls = [chr(c) for c in range(0x20)] + ["\x7f"] + [chr(c) for c in range(0x80, 0xA0)] + \
        ["\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
         "\u061c", "\u2028", "\u2029", "\ufeff"]
    for ch in controls:
        shown = printable(f"a{ch}b")
        assert ch not in shown and shown.startswith("a\\") and shown.endswith("b"), (ch, shown)
    assert printable("x" * 10**7).endswith("...") and len(printable("x" * 10**7)) == 2000
    nested: list = [1] * 10
    for _ in range(8):
        nested = [nested] * 10  # 10**9 leaves, shared
    began = time.monotonic()
    assert len(short(nested)) <= 60 and time.monotonic() - began < 1
