"""Publish a built site to a git branch (``gh-pages``), as ``mkdocs gh-deploy`` does, with git's plumbing.

The branch gets the exact site directory (it holds ``.nojekyll``: GitHub must not run Jekyll, which drops
files and folders starting with an underscore) as ONE commit by default, force-pushed, like
``mkdocs gh-deploy --no-history``: a gallery's media are large and every old version kept in the branch's
history counts against the repository. ``history=True`` commits on top of the remote branch instead.

We do not call mkdocs' gh_deploy / ghp-import: they pass the remote and branch to git with no ``--`` before
them, so a remote of ``--upload-pack=CMD`` ran CMD, and a failed push was a CalledProcessError traceback
after the local commit was made. Here the remote and the branch are checked first (a configured remote's
name, a URL or a folder, a valid branch name, neither starting with ``-``), every git call puts ``--``
before its positional arguments, the remote is reached (``git ls-remote``) before anything is committed,
and every git failure is one line.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from featvis_site.errors import BuildFailed, SiteError

DEFAULT_MESSAGE = "Publish featvis atlas ({sha}, MkDocs {version})"
#: the build's marker file stays out of the published branch
SKIP = {".featvis-site"}
#: transports that run programs (`ext::CMD`, `fd::`): never, whatever the user's git config allows
_SAFE_GIT = ["-c", "protocol.ext.allow=never", "-c", "protocol.fd.allow=never"]
_URL = re.compile(r"(?:https?|ssh|git|file)://[^\s]+|[A-Za-z0-9._~-]+@[A-Za-z0-9.-]+:[^\s]*")


def _git(*args: str, stdin: IO[bytes] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", *_SAFE_GIT, *args], capture_output=True, text=True, stdin=stdin)
    except FileNotFoundError:
        raise SiteError("git is not installed; publishing needs git") from None


def _why(result: subprocess.CompletedProcess[str]) -> str:
    """git's own reason, as one line (its first `fatal:`/`error:` line, else its last line)."""
    lines = [line.strip() for line in (result.stderr or result.stdout or "").splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("fatal:", "error:", "remote: error:")):
            return line
    return lines[-1] if lines else f"git exited with status {result.returncode}"


def _require_repo() -> None:
    inside = _git("rev-parse", "--is-inside-work-tree")
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        raise SiteError(f"{Path.cwd()} is not inside a git repository; run publish from the project's repository")


def check_branch(branch: str) -> str:
    """A branch name git accepts (`git check-ref-format refs/heads/NAME`), not starting with '-', not HEAD."""
    if not branch or branch.startswith("-") or branch == "HEAD" or "@{" in branch or any(c.isspace() for c in branch):
        raise SiteError(f"--branch {branch!r} is not a branch name")
    if _git("check-ref-format", f"refs/heads/{branch}").returncode != 0:
        raise SiteError(f"--branch {branch!r} is not a branch name git accepts")
    current = _git("rev-parse", "--abbrev-ref", "HEAD").stdout.strip()
    if current == branch:
        raise SiteError(f"the checked-out branch is {branch}; switch to your working branch before publishing")
    return branch


def check_remote(remote: str) -> str:
    """A configured remote's name, a URL (https://, ssh://, git://, file://, user@host:path) or a folder;
    never anything that starts with '-' (git would read it as an option)."""
    if not remote or remote.startswith("-") or not remote.isprintable():
        raise SiteError(f"--remote {remote!r} is not a remote name, a URL or a folder")
    names = _git("remote").stdout.split()
    if remote in names:
        return remote
    if "::" in remote.split("/", 1)[0]:
        raise SiteError(f"--remote {remote!r}: git transports that run programs are not allowed")
    if _URL.fullmatch(remote) or Path(remote).is_dir():
        return remote
    known = f" (this repository has: {', '.join(names)})" if names else " (this repository has no remotes)"
    raise SiteError(f"--remote {remote!r} is not a configured remote, a URL or a folder{known}")


@dataclass(frozen=True)
class Target:
    """Where to publish, checked and reached: the remote, the branch and the remote branch's commit."""

    remote: str
    branch: str
    tip: str | None


def reach(remote: str, branch: str) -> Target:
    """Check the remote and branch and reach the remote (SiteError, one line, before anything is committed)."""
    _require_repo()
    branch, remote = check_branch(branch), check_remote(remote)
    found = _git("ls-remote", "--", remote, f"refs/heads/{branch}")
    if found.returncode != 0:
        raise SiteError(f"cannot reach the remote {remote!r}: {_why(found)}")
    tip = found.stdout.split()[0] if found.stdout.strip() else None
    return Target(remote, branch, tip)


def _parent(target: Target, history: bool, force: bool) -> str | None:
    """The commit the new one follows: none without history; else the remote branch (fetched), or with
    `force` the local branch as it is."""
    if not history:
        return None
    if not force and target.tip:
        fetched = _git("fetch", "--quiet", "--", target.remote, f"+refs/heads/{target.branch}:refs/heads/{target.branch}")
        if fetched.returncode != 0:
            raise BuildFailed(f"fetching {target.branch} from {target.remote} failed: {_why(fetched)}")
    local = _git("rev-parse", "--verify", "--quiet", f"refs/heads/{target.branch}^{{commit}}")
    return local.stdout.strip() if local.returncode == 0 else None


def _quote(path: str) -> str:
    """A path for git fast-import, C-style quoted (any name works: spaces, quotes, newlines)."""
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _stream(site: Path, branch: str, parent: str | None, message: str, ident: str, out: IO[bytes]) -> int:
    """The fast-import stream of one commit holding exactly the files of `site` (links are not published)."""
    body = message.encode("utf-8")
    out.write(f"commit refs/heads/{branch}\ncommitter {ident}\ndata {len(body)}\n".encode() + body + b"\n")
    if parent:
        out.write(f"from {parent}\n".encode())
    out.write(b"deleteall\n")
    count = 0
    for folder, dirs, names in os.walk(site):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder, name)
            if (name in SKIP and Path(folder) == site) or path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
            mode = "100755" if os.access(path, os.X_OK) else "100644"
            relative = path.relative_to(site).as_posix()
            out.write(f"M {mode} inline {_quote(relative)}\ndata {len(data)}\n".encode() + data + b"\n")
            count += 1
    out.write(b"\n")
    return count


def _commit(site: Path, target: Target, parent: str | None, message: str) -> None:
    ident = _git("var", "GIT_COMMITTER_IDENT")
    if ident.returncode != 0:
        raise SiteError(f"git has no committer identity: {_why(ident)} (set user.name and user.email)")
    args = ["fast-import", "--quiet", "--date-format=raw"] + ([] if parent else ["--force"])
    with tempfile.TemporaryFile() as err, subprocess.Popen(["git", *_SAFE_GIT, *args], stdin=subprocess.PIPE,
                                                           stdout=subprocess.DEVNULL, stderr=err) as importer:
        assert importer.stdin is not None
        try:
            _stream(site, target.branch, parent, message, ident.stdout.strip(), importer.stdin)
            importer.stdin.close()
        except BrokenPipeError:  # fast-import stopped early: its stderr says why
            pass
        importer.wait()
        err.seek(0)
        lines = err.read().decode(errors="replace").splitlines()
    if importer.returncode != 0:
        reason = next((line for line in lines if line.strip()), "")
        raise BuildFailed(f"committing the site to {target.branch} failed: {reason or importer.returncode}")


def publish(site_dir: Path, target: Target, *, message: str | None = None, history: bool = False,
            force: bool = False) -> None:
    """Commit ``site_dir`` to ``target.branch`` (one commit, or on top of the remote branch with `history`)
    and push it to ``target.remote``. `force` force-pushes with history too (without it, always)."""
    site_dir = Path(site_dir)
    if not (site_dir / "index.html").is_file():
        raise SiteError(f"{site_dir} holds no built site")
    if message is None:
        import mkdocs

        sha = _git("rev-parse", "--short", "HEAD").stdout.strip() or "no commit"
        message = DEFAULT_MESSAGE.format(sha=sha, version=mkdocs.__version__)
    parent = _parent(target, history, force)
    _commit(site_dir, target, parent, message)
    push = ["push", "--quiet"] + (["--force"] if force or not history else [])
    pushed = _git(*push, "--", target.remote, f"refs/heads/{target.branch}:refs/heads/{target.branch}")
    if pushed.returncode != 0:
        raise BuildFailed(f"pushing {target.branch} to {target.remote} failed: {_why(pushed)}")
