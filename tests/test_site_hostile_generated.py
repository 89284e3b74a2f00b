"""Generated hostile inputs for the gallery (issue 19, item 2, the site's families): rather than the listed cases
one by one, hypothesis draws them from grammars of HTML, Markdown, template and terminal syntax, and numbers.

- strings in the Markdown pass: a value in every Markdown context a template uses must render as exactly its
  own text (the same elements and attributes as a plain word);
- stores and extras: every string of a store (model name, labels, captions, classes, layers, settings keys
  and values, errors, the extras' names, layers, labels and job) and its numbers and nesting, through
  `featvis site build`: a strict build that succeeds, no traceback, no raw control character printed, no element,
  event handler or javascript: link from a payload in any page, no file written outside the out folders;
- publish arguments: `--remote`/`--branch` through the publish checks: one line or a reachable target, never a
  command run, never a ref changed;
- HTTP requests to `site serve`: a status line below 500, never a byte from outside the site, no traceback.

How many of each were checked is printed (pytest -s) and written to <basetemp>/site-hostile-counts.json. Sizes
(FEATVIS_SITE_HOSTILE_SCALE, default 1) keep the whole file near 40 s on two busy cores.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featvis_site.cli import main
from featvis_site.errors import SiteError
from featvis_site.publish import reach
from featvis_site.serve import serve_in_thread
from featvis_site.text import inert
from hostile import MD_PAYLOADS, PAYLOADS, markdown_store
from test_site_hostile import injected
from test_site_markdown_xss import CONTEXTS, rendered, shown, squash

SCALE = float(os.environ.get("FEATVIS_SITE_HOSTILE_SCALE", "1"))
COUNTS: Counter = Counter()
PROPERTY = dict(database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                      HealthCheck.data_too_large])


def bounded(seconds: float) -> timedelta:
    """Each example's time limit: generous for two busy cores, but a hang fails (0 hangs is the property)."""
    return timedelta(seconds=seconds)

FRAGMENTS = [
    "[", "]", "](", "javascript:", "JaVaScRiPt:", "java\tscript:", "alert(1)", ")", "![", "{: ", "{:", "{ ", "}",
    "onmouseover=", "onclick='", ".pwned", "#id", "<", ">", "</", "<div markdown=\"1\">", "<div markdown=1>", "</div>",
    "<a href=", "<img src=x onerror=", "<script>", "*", "**", "_", "__", "`", "``", "~~", "^^", "==", "++", "\\",
    "\n", "\n\n", "\r\n", "    ", "\t", "!!! note", "??? note", "|", "|---|", "---", "# ", "1. ", "- ", "> ",
    "www.", "http://", "https://x.invalid/", "mailto:", "<http://x>", "<javascript:alert(3)>", "@user", "&#91;",
    "&lt;", "&amp;", "&#x6a;avascript:", "\x02", "\x03", "wzxhzdk:0", "\x1b[31m", "\x07", "\x00", "\u202e", "\u2066",
    "{{ 7*7 }}", "{% raw %}", "${alert(4)}", "$$", "[TOC]", "[^1]", "*[HTML]: x", ": def", "\"", "'", "=",
]
payload_text = st.one_of(
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), min_size=1, max_size=12).map("".join),
    st.sampled_from(MD_PAYLOADS + PAYLOADS),
    st.text(max_size=40),
)


@pytest.fixture(scope="module", autouse=True)
def report_counts(tmp_path_factory: pytest.TempPathFactory):
    yield
    report = {"checks": dict(COUNTS), "total": sum(v for k, v in COUNTS.items() if not k.startswith("("))}
    (tmp_path_factory.getbasetemp() / "site-hostile-counts.json").write_text(json.dumps(report, indent=1))
    print(f"\nsite hostile inputs checked: {report['total']} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(COUNTS.items()))}); 0 tracebacks, 0 payloads as markup")


# ------------------------------------------------------------------------------ strings in the Markdown pass

BENIGN = {context: shown(rendered(context, "plain")).tags for context in CONTEXTS}
_DROPPED = dict.fromkeys([*range(9), 11, 12, *range(14, 32), 127])  # C0 controls (Markdown's placeholders)


@settings(max_examples=int(400 * SCALE), deadline=bounded(5), **PROPERTY)
@given(value=payload_text)
def test_a_generated_value_is_its_own_text_in_every_markdown_context(value: str) -> None:
    text = squash(value.translate(_DROPPED))
    for context in CONTEXTS:
        html = rendered(context, value)
        got = shown(html)
        if text:
            assert got.tags == BENIGN[context], (value, html)
            assert text in squash(" ".join(got.text)), (value, html)
        else:  # nothing to show: an empty paragraph may go, no element may come
            assert set(got.tags) <= set(BENIGN[context]), (value, html)
    assert str(inert(value)).count("<") == 0
    COUNTS["markdown strings"] += 1


# ------------------------------------------------------------------------------------ stores through build

RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
numbers = st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True), st.none(),
                    st.booleans())
nested = st.recursive(st.one_of(numbers, payload_text), lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(payload_text, inner, max_size=4)), max_leaves=20)


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@settings(max_examples=max(2, int(6 * SCALE)), deadline=bounded(120), **PROPERTY)
@given(strings=st.lists(payload_text, min_size=24, max_size=24), settings_=st.dictionaries(payload_text, nested, max_size=6),
       indices=st.lists(st.one_of(st.integers(-(2**63), 2**63), st.none()), min_size=1, max_size=8),
       floats=st.lists(st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324]),
                                 st.floats(allow_nan=True, allow_infinity=True)), min_size=1, max_size=16))
def test_generated_stores_build_inert(tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str],
                                      strings: list[str], settings_: dict[str, Any], indices: list[int | None],
                                      floats: list[float]) -> None:
    root = tmp_path_factory.mktemp("generated-store")
    names = [s if s.strip() else f"m{i}" for i, s in enumerate(strings[:2])]
    if names[0] == names[1]:
        names[1] += "-2"
    pick = lambda i: names[i] if i < 2 else strings[i % len(strings)]  # noqa: E731
    try:
        store = markdown_store(root / "store", pick, video=False, index=lambda i: indices[i % len(indices)],
                               number=lambda i: floats[i % len(floats)])
    except ValueError:  # a model name the store format refuses (over 256 characters): not a store to build
        COUNTS["(stores the synthetic writer refused)"] += 1
        return
    for path in (store / "manifests").glob("*.json"):
        data = json.loads(path.read_text())
        data["settings"] = {**data["settings"], **settings_}
        path.write_text(json.dumps(data))
    before = _files(root)
    code = main(["build", "--store", str(store), "--out", str(root / "out" / "site")])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]  # a store of any strings and numbers builds, strictly
    assert "Traceback" not in captured.err and RAW.search(captured.out + captured.err.replace("\n", "")) is None
    created = {p for p in _files(root) - before}
    assert all(p.startswith("out") for p in created), sorted(p for p in created if not p.startswith("out"))[:5]
    site = root / "out" / "site"
    pages = list(site.rglob("*.html"))
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert injected(html) == [], (page, injected(html)[:3])
        assert not re.search(r"""(?:href|src)\s*=\s*["']?\s*javascript:""", html, re.I), page
    for record in site.rglob("unit.json"):  # JSON the browser can parse: no NaN, no Infinity
        json.loads(record.read_text(encoding="utf-8"), parse_constant=lambda name, record=record: pytest.fail(f"{record}: {name}"))
        COUNTS["(unit.json checked)"] += 1
    assert len(pages) >= 11  # every page kind: home, compare, 404, 2 models, 3 layers, 2 logits (1 with dives), explain
    assert any(p.name == "index.html" and p.parent.name == "explain" for p in pages)
    COUNTS["stores built"] += 1
    COUNTS["(store strings placed)"] += len(strings) + len(settings_)
    COUNTS["(pages checked)"] += len(pages)


# ------------------------------------------------------------------------------------------ publish arguments


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("publish-generated")
    _git("init", "--quiet", "--bare", str(root / "github.git"))
    repo = root / "repo"
    repo.mkdir()
    _git("init", "--quiet", "-b", "main", cwd=repo)
    _git("-c", "user.name=T", "-c", "user.email=t@example.invalid", "commit", "--quiet", "--allow-empty", "-m", "i", cwd=repo)
    _git("remote", "add", "origin", str(root / "github.git"), cwd=repo)
    return repo


OPTION_LIKE = ["--upload-pack={cmd}", "--receive-pack={cmd}", "-u{cmd}", "--exec={cmd}", "-c core.sshCommand={cmd}",
               "--config=core.fsmonitor={cmd}", "-oProxyCommand={cmd}", "ext::sh -c {cmd}", "ext::{cmd}", "--help",
               "--force", "-f", "--mirror", "--all", "--delete", "-d", "--tags", "--", "-", "@{-1}", "HEAD",
               "refs/heads/x", "origin --upload-pack={cmd}", "origin;{cmd}", "$({cmd})", "`{cmd}`", "ssh://-oProxyCommand={cmd}/x",
               "-oProxyCommand={cmd}@host:x", "file://{repo}/../github.git", "origin", "gh-pages", "main", "x..y", "x.lock",
               "a/./b", "/tmp", ".", ""]


@settings(max_examples=int(150 * SCALE), deadline=bounded(20), **PROPERTY)
@given(remote=st.one_of(st.sampled_from(OPTION_LIKE), payload_text, st.sampled_from(OPTION_LIKE).flatmap(
           lambda o: payload_text.map(lambda t: o + t))),
       branch=st.one_of(st.sampled_from(OPTION_LIKE), payload_text, st.just("gh-pages")))
def test_generated_publish_arguments_run_nothing(repo: Path, tmp_path_factory: pytest.TempPathFactory,
                                                 monkeypatch: pytest.MonkeyPatch, remote: str, branch: str) -> None:
    flag = repo.parent / "ran"
    cmd = f"touch {flag}"
    remote, branch = (x.replace("{cmd}", cmd).replace("{repo}", str(repo)) for x in (remote, branch))
    monkeypatch.chdir(repo)
    # a drawn URL may name a host: no network transport is tried (a lookup could hang offline), no prompt
    monkeypatch.setenv("GIT_ALLOW_PROTOCOL", "file")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    monkeypatch.setenv("GIT_SSH_COMMAND", "false")
    before = _git("for-each-ref", cwd=repo), _git("--git-dir", str(repo.parent / "github.git"), "for-each-ref")
    try:
        if "\x00" in remote or "\x00" in branch:
            raise SiteError("NUL")  # an argument no command line can carry
        target = reach(remote, branch)
    except SiteError as error:
        assert "\n" not in str(error) and "Traceback" not in str(error)
        COUNTS["publish arguments refused"] += 1
    else:
        assert not target.remote.startswith("-") and not target.branch.startswith("-")
        COUNTS["publish arguments reached"] += 1
    assert not flag.exists(), (remote, branch)
    after = _git("for-each-ref", cwd=repo), _git("--git-dir", str(repo.parent / "github.git"), "for-each-ref")
    assert after == before, (remote, branch)


# ------------------------------------------------------------------------------------------- HTTP requests


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("serve-generated")
    site = root / "site"
    (site / "sub").mkdir(parents=True)
    (site / "index.html").write_text("<p>home</p>")
    (site / "sub" / "a b.html").write_text("<p>space</p>")
    (root / "secret.txt").write_text("SECRET-OUTSIDE-THE-SITE")
    (site / "link").symlink_to(root / "secret.txt")  # a link a site should never have: still never served out
    with serve_in_thread(site, timeout=1) as base:
        yield int(base.rstrip("/").rsplit(":", 1)[1])


PATH_PARTS = ["/", "..", "%2e%2e", "%2f", "%00", "%ff", "%ed%a0%80", "%", "%%", "sub", "index.html", "secret.txt",
              "link", "a%20b.html", "\\", "//", "?", "#", ";", "~", "%5c", "." * 3, "\u00e9", "\u202e", " ", "%0d%0a"]
METHODS = [b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"TRACE", b"CONNECT", b"BREW", b"get", b"", b"G\x00T"]
VERSIONS = [b"HTTP/1.0", b"HTTP/1.1", b"HTTP/0.9", b"HTTP/2.0", b"HTTP/9", b"HTTP/1.1x", b"", b"FOO"]
HEADERS = [b"Host: x", b"Range: bytes=0-1", b"Range: bytes=-1", b"If-Modified-Since: never", b"Content-Length: -1",
           b"Content-Length: 99999999999", b"Transfer-Encoding: chunked", b"X: " + b"y" * 70000, b"Bad header",
           b"Expect: 100-continue", b"Connection: keep-alive"]


@settings(max_examples=int(300 * SCALE), deadline=bounded(15), **PROPERTY)
@given(method=st.sampled_from(METHODS), parts=st.lists(st.one_of(st.sampled_from(PATH_PARTS), st.text(max_size=5)),
                                                      max_size=10),
       version=st.sampled_from(VERSIONS), headers=st.lists(st.sampled_from(HEADERS), max_size=3),
       tail=st.binary(max_size=30))
def test_generated_http_requests_are_answered_safely(served: int, capfd: pytest.CaptureFixture[str], method: bytes,
                                                     parts: list[str], version: bytes, headers: list[bytes],
                                                     tail: bytes) -> None:
    path = ("/" + "/".join(parts)).encode("utf-8", "surrogatepass")
    raw = b" ".join(x for x in (method, path, version) if x) + b"\r\n" + b"".join(h + b"\r\n" for h in headers)
    raw += b"\r\n" + tail
    with socket.create_connection(("127.0.0.1", served), timeout=5) as sock:
        try:
            sock.sendall(raw)
            response = b""
            while len(response) < 1_000_000:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                response += chunk
        except ConnectionError:  # the server closed first (a header too long): fine, if it said nothing unsafe
            response = b""
    assert b"SECRET" not in response
    if response:
        # 1xx-4xx, or 501/505 (a method or version the static server does not speak); never an error of its own.
        # A request line the server reads as HTTP/0.9 gets its error page with no status line
        code = re.match(rb"HTTP/1\.[01] (\d{3}) ", response) or re.search(rb"Error code explanation: (\d{3})", response)
        assert code and (code.group(1)[:1] in b"1234" or code.group(1) in (b"501", b"505")), response[:100]
        location = re.search(rb"\r\nLocation: ([^\r]*)", response)
        assert location is None or not location.group(1).startswith((b"//", b"/\\", b"http")), location
    err = capfd.readouterr().err
    assert "Traceback" not in err and err == "", err
    COUNTS["HTTP requests"] += 1


# ------------------------------------------------------------------------------- a sample, in the browser


@pytest.mark.slow
def test_a_sample_of_generated_payloads_runs_nothing_in_chromium(tmp_path: Path, browser: Any) -> None:
    """One store whose strings are drawn from the same grammar (seeded), every page loaded in Chromium and every
    element that shows a payload hovered and clicked: no dialog, no handler, no javascript: URL."""
    import random

    from featvis_site.build import build_site
    from hostile import INJECTED
    from test_site_markdown_xss import HOVER_CLICK

    rng = random.Random(19)
    drawn = ["".join(rng.choice(FRAGMENTS + MD_PAYLOADS + PAYLOADS) for _ in range(rng.randint(2, 8))) + f" alert({i})"
             for i in range(40)]
    odd = [math.nan, math.inf, 1e308, -1e308, 5e-324, 0.5, -math.inf]
    store = markdown_store(tmp_path / "store", lambda i: drawn[i % len(drawn)], video=False,
                           number=lambda i: odd[i % len(odd)])
    site = build_site(store, tmp_path / "site").site_dir
    paths = sorted({p.parent.relative_to(site).as_posix() for p in site.rglob("index.html")
                    if "media" not in p.parts and "search" not in p.parts})
    dialogs: list[str] = []
    errors: list[str] = []
    hits = lightboxes = 0
    with serve_in_thread(site) as base:
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        page = context.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: errors.append(str(e)))
        for path in paths:
            page.goto(base + ("" if path == "." else path + "/"), wait_until="load")
            result = page.evaluate(HOVER_CLICK)
            assert result["handlers"] == [] and result["scripted"] == 0, (path, result)
            for cell in page.locator("a.fv-cell").all()[:2]:  # the lightbox draws a unit's hostile numbers
                cell.click()
                page.wait_for_selector("dialog.fv-lightbox[open]", timeout=5000)
                page.wait_for_function("document.querySelector('.fv-lb-scores').innerHTML !== ''", timeout=5000)
                page.keyboard.press("Escape")
                lightboxes += 1
            assert page.evaluate(INJECTED) == {"pwned": 0, "elements": 0, "javascript": 0}, path
            hits += result["hits"]
        context.close()
    assert dialogs == [] and errors == [] and len(paths) >= 10 and hits >= 40 and lightboxes >= 6, errors
    COUNTS["(browser: pages)"] += len(paths)
    COUNTS["(browser: elements hovered and clicked)"] += hits
    COUNTS["(browser: drawn strings)"] += len(drawn)
    COUNTS["(browser: lightboxes)"] += lightboxes
