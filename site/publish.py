"""Publish a built site to a git branch (``gh-pages``) with ``mkdocs gh-deploy``'s own machinery.

We call MkDocs' gh-deploy implementation (ghp-import underneath) on the config our build generated, after
our build: running the ``mkdocs gh-deploy`` command itself would rebuild the whole site a second time.
The branch gets the exact site directory plus ``.nojekyll`` (GitHub must not run Jekyll: it would drop
files and folders starting with an underscore).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from featvis_site.errors import BuildFailed, SiteError

DEFAULT_MESSAGE = "Publish featvis atlas ({sha}, MkDocs {version})"


def _git(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=check)


def _require_repo() -> None:
    try:
        inside = _git("rev-parse", "--is-inside-work-tree")
    except FileNotFoundError:
        raise SiteError("git is not installed; publishing needs git") from None
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        raise SiteError(f"{Path.cwd()} is not inside a git repository; run publish from the project's repository")


def _sync_branch(remote: str, branch: str) -> None:
    """Start from the remote's branch when it has one, so the push is a fast-forward from any clone."""
    current = _git("rev-parse", "--abbrev-ref", "HEAD").stdout.strip()
    if current == branch:
        raise SiteError(f"the checked-out branch is {branch}; switch to your working branch before publishing")
    _git("fetch", "--quiet", remote, f"+refs/heads/{branch}:refs/heads/{branch}")  # absent remote branch: fine


def publish(config_file: Path, *, remote: str = "origin", branch: str = "gh-pages", message: str | None = None,
            force: bool = False) -> None:
    """Commit the site built from ``config_file`` to ``branch`` and push it to ``remote`` (a name or URL)."""
    _require_repo()
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "true")
    import mkdocs
    from mkdocs.commands.gh_deploy import gh_deploy
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    if not force:
        _sync_branch(remote, branch)
    if message is None:
        sha = _git("rev-parse", "--short", "HEAD").stdout.strip() or "no commit"
        message = DEFAULT_MESSAGE.format(sha=sha, version=mkdocs.__version__)
    try:
        config = load_config(str(config_file), remote_name=remote, remote_branch=branch)
        # gh_deploy str.format()s the message again: escape braces so any text is safe
        gh_deploy(config, message=message.replace("{", "{{").replace("}", "}}"), force=force, ignore_version=True)
    except MkDocsException as exc:
        raise BuildFailed(f"publishing to {remote} {branch} failed: {exc}") from None
    except SystemExit as exc:  # ghp-import exits on some git errors
        raise BuildFailed(f"publishing to {remote} {branch} failed (git exit {exc.code})") from None
