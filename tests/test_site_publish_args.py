"""`featvis site publish` given hostile arguments (issue 19, item 2.2): a remote of `--upload-pack=CMD` ran CMD,
`--remote=--help` printed git's manual and reported success, `--branch=--force` made a branch named `--force`
and a traceback, and with no `origin` the push failed with a traceback after a local gh-pages commit.

Each must now be one line on stderr (exit 2 for what the user typed, 1 for a push git refused), run nothing,
and leave the repository's refs as they were: nothing is built or committed for a target that fails its checks.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from featvis_site.cli import main
from bench.synthetic import SyntheticModel, make_store


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project repository with one commit, no remote, as the working directory."""
    for var, value in {"GIT_AUTHOR_NAME": "Tester", "GIT_AUTHOR_EMAIL": "t@example.invalid",
                       "GIT_COMMITTER_NAME": "Tester", "GIT_COMMITTER_EMAIL": "t@example.invalid"}.items():
        monkeypatch.setenv(var, value)
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "--quiet", "-b", "main", cwd=repo)
    (repo / "README.md").write_text("# project\n")
    git("add", "README.md", cwd=repo)
    git("commit", "--quiet", "-m", "init", cwd=repo)
    monkeypatch.chdir(repo)
    return repo


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    small = SyntheticModel(render={"block1": 2}, logits=2, pending_every=0, failed=0, corrupt=0, diversity=1,
                           video=False, filters=False)
    return make_store(tmp_path_factory.mktemp("publish-args") / "store", [small])


def refs(repo: Path) -> str:
    return git("for-each-ref", "--format=%(refname) %(objectname)", cwd=repo)


def publish(store: Path, out: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["publish", "--store", str(store), "--out", str(out), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "CalledProcessError" not in err, err
    return lines[0]


@pytest.mark.parametrize("option", ["--remote=--upload-pack=touch {flag}", "--remote=--receive-pack=touch {flag}",
                                    "--remote=-oProxyCommand=touch {flag}", "--remote=ext::sh -c touch% {flag}",
                                    "--remote=ext::touch"])
def test_a_remote_that_is_an_option_runs_nothing(repo: Path, store: Path, tmp_path: Path, option: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    flag = tmp_path / "ran"
    before = refs(repo)
    code, out, err = publish(store, tmp_path / "out" / "site", option.format(flag=flag), capsys=capsys)
    assert code == 2 and "--remote" in one_line(err), err
    assert not flag.exists()  # CMD never ran
    assert refs(repo) == before and not (tmp_path / "out" / "site").exists()  # nothing built, nothing committed
    assert "published" not in out


def test_remote_help_is_refused_not_a_manual(repo: Path, store: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = publish(store, tmp_path / "out" / "site", "--remote=--help", capsys=capsys)
    assert code == 2 and "is not a remote name" in one_line(err)
    assert out == "" and "GIT-FETCH" not in err.upper()


@pytest.mark.parametrize("branch", ["--force", "-f", "@{-1}", "HEAD", "a..b", "bad name", "x.lock", "", "main"])
def test_a_branch_must_be_a_branch_name(repo: Path, store: Path, tmp_path: Path, branch: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    remote = tmp_path / "github.git"
    git("init", "--quiet", "--bare", str(remote))
    before = refs(repo)
    code, out, err = publish(store, tmp_path / "out" / "site", f"--branch={branch}", f"--remote={remote}",
                             capsys=capsys)
    assert code == 2 and "branch" in one_line(err)
    assert refs(repo) == before and git("--git-dir", str(remote), "for-each-ref") == ""


@pytest.mark.parametrize("remote", ["origin", "upstream", "file:///nonexistent/github.git", "{tmp}/absent.git",
                                    "{tmp}"])
def test_an_absent_or_unreachable_remote_commits_nothing(repo: Path, store: Path, tmp_path: Path, remote: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    before = refs(repo)
    code, out, err = publish(store, tmp_path / "out" / "site", f"--remote={remote.format(tmp=tmp_path)}",
                             capsys=capsys)
    line = one_line(err)
    assert code == 2 and ("not a configured remote" in line or "cannot reach" in line), line
    assert refs(repo) == before  # no local gh-pages commit
    assert not (tmp_path / "out" / "site").exists()


@pytest.mark.slow
def test_a_refused_push_is_one_line(repo: Path, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    remote = tmp_path / "github.git"
    git("init", "--quiet", "--bare", str(remote))
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'GitHub says no' >&2\nexit 1\n")
    hook.chmod(0o755)
    git("remote", "add", "origin", str(remote), cwd=repo)
    code, out, err = publish(store, tmp_path / "out" / "site", capsys=capsys)
    line = one_line(err)
    assert code == 1 and line.startswith("featvis site: pushing gh-pages to origin failed"), line
    assert git("--git-dir", str(remote), "for-each-ref") == ""
