"""``featvis site publish`` against a local bare repository standing in for GitHub."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from featvis_site.cli import main
from bench.synthetic import SyntheticModel, make_store


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.mark.slow
def test_publish_puts_the_site_on_gh_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in {"GIT_AUTHOR_NAME": "Tester", "GIT_AUTHOR_EMAIL": "t@example.invalid",
                       "GIT_COMMITTER_NAME": "Tester", "GIT_COMMITTER_EMAIL": "t@example.invalid"}.items():
        monkeypatch.setenv(var, value)
    small = SyntheticModel(render={"block1": 4}, logits=5, pending_every=0, failed=0, corrupt=1, diversity=1)
    store = make_store(tmp_path / "store", [small])
    remote = tmp_path / "github.git"
    git("init", "--quiet", "--bare", "-b", "main", str(remote))
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "--quiet", "-b", "main", cwd=repo)
    (repo / "README.md").write_text("# project\n")
    git("add", "README.md", cwd=repo)
    git("commit", "--quiet", "-m", "init", cwd=repo)
    git("remote", "add", "origin", str(remote), cwd=repo)
    git("push", "--quiet", "origin", "main", cwd=repo)
    monkeypatch.chdir(repo)

    out = tmp_path / "out" / "site"
    assert main(["publish", "--store", str(store), "--out", str(out), "--message", "Atlas {test}"]) == 0
    files = set(git("--git-dir", str(remote), "ls-tree", "-r", "--name-only", "gh-pages").split())
    assert {".nojekyll", "index.html", "models/toynet/block1/index.html", "models/toynet/logits/index.html",
            "compare/index.html", "assets/featvis/featvis.js"} <= files
    thumbs = {f for f in files if f.endswith("thumb.webp")}
    assert len(thumbs) == 4 + 5 - 1  # the corrupt unit is not published
    assert not {f for f in files if f.endswith(("image.png", "meta.json"))}
    assert git("--git-dir", str(remote), "log", "-1", "--format=%s", "gh-pages").strip() == "Atlas {test}"
    assert git("rev-parse", "--abbrev-ref", "HEAD").strip() == "main"  # the working branch is untouched

    assert not {f for f in files if f.endswith(".featvis-site")}  # the build's marker stays out

    # a second publish from a fresh clone, naming the remote by URL: by default the branch is ONE commit
    # (like mkdocs gh-deploy --no-history), so old media never pile up in its history
    clone = tmp_path / "clone"
    git("clone", "--quiet", str(remote), str(clone))
    monkeypatch.chdir(clone)
    assert git("rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert main(["publish", "--store", str(store), "--out", str(out), "--remote", str(remote)]) == 0
    log = git("--git-dir", str(remote), "log", "--format=%s", "gh-pages").splitlines()
    assert len(log) == 1 and log[0].startswith("Publish featvis atlas (")
    assert set(git("--git-dir", str(remote), "ls-tree", "-r", "--name-only", "gh-pages").split()) == files

    # --history commits on top of the remote branch (fetched first) and pushes without force
    assert main(["publish", "--store", str(store), "--out", str(out), "--remote", str(remote), "--history",
                 "--message", "second"]) == 0
    log = git("--git-dir", str(remote), "log", "--format=%s", "gh-pages").splitlines()
    assert log[0] == "second" and len(log) == 2
