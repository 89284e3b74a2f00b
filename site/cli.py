"""``featvis site build|serve|publish``: the gallery's command line.

``main(argv)`` returns an exit code instead of exiting, so the main ``featvis`` CLI can delegate to it.
Exit codes: 0 ok, 1 the build or the push failed (e.g. a broken link in strict mode), 2 a user error
(missing store, no manifests, bad option), reported as one line on stderr without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
from pathlib import Path
from typing import NoReturn

from featvis_site.build import DEFAULT_OUT, DEFAULT_STORE, build_site
from featvis_site.errors import BuildFailed, SiteError
from featvis_site.media import DEFAULT_BUDGET
from featvis_site.text import printable

PROG = "featvis site"
_handler: logging.Handler | None = None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", type=Path, default=DEFAULT_STORE, help="the store to read (default: ./store)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the site goes (default: ./out/site)")
    p.add_argument("--work", type=Path, default=None,
                   help="generated docs dir and config (default: <out>-src, next to the site)")
    p.add_argument("--site-url", default=None, help="public URL of the site (canonical links, sitemap)")
    p.add_argument("--budget-mb", type=float, default=DEFAULT_BUDGET / 1e6,
                   help="size budget; optional media are left out beyond it (default: 900, Pages allows 1000)")
    p.add_argument("-v", "--verbose", action="store_true", help="show MkDocs' progress messages")


def say(message: object, *, err: bool = False) -> None:
    """Print a line that may carry input (file names, jobs, unit names): control characters escaped."""
    print(printable(message), file=sys.stderr if err else sys.stdout, flush=True)


class _Printable(logging.Formatter):
    """MkDocs' and our log lines, with the control characters of any input in them escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), newlines=True)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {printable(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description="Build, serve and publish the featvis atlas gallery.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{build,serve,publish}")
    p = sub.add_parser("build", help="build the static site (strict: broken links or missing assets fail)")
    _common(p)
    p.add_argument("--no-strict", dest="strict", action="store_false",
                   help="report broken links as warnings instead of failing")
    p = sub.add_parser("serve", help="build, then serve the site on loopback")
    _common(p)
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--no-build", dest="build", action="store_false", help="serve the existing --out as is")
    p = sub.add_parser("publish", help="build, then push the site to the gh-pages branch (mkdocs gh-deploy)")
    _common(p)
    p.add_argument("--remote", default="origin", help="git remote name or URL (default: origin)")
    p.add_argument("--branch", default="gh-pages", help="branch to publish to (default: gh-pages)")
    p.add_argument("--message", default=None, help="commit message of the published site")
    p.add_argument("--history", action="store_true",
                   help="commit on top of the branch's history (default: the branch holds one commit, force-pushed)")
    p.add_argument("--force", action="store_true", help="with --history: force-push from the local branch")
    return parser


def _setup_logging(verbose: bool) -> None:
    global _handler
    for name in ("mkdocs", "featvis_site"):
        logger = logging.getLogger(name)
        if _handler is not None:
            logger.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(_Printable("%(levelname)-8s%(message)s"))
    for name in ("mkdocs", "featvis_site"):
        logger = logging.getLogger(name)
        logger.addHandler(_handler)
        logger.setLevel(logging.INFO if verbose else logging.WARNING)


def _check(args: argparse.Namespace) -> None:
    """Options as a user typed them: one line when they make no sense (no traceback from deep inside)."""
    if not (math.isfinite(args.budget_mb) and 1 <= args.budget_mb <= 1e7):
        raise SiteError(f"--budget-mb must be a number of megabytes between 1 and 10,000,000, got {args.budget_mb}")
    if args.site_url is not None and not re.fullmatch(r"https?://[^\s\"'<>]+", args.site_url):
        raise SiteError(f"--site-url must be an http(s):// address, got {args.site_url!r}")
    if getattr(args, "port", 0) is not None and not 0 <= getattr(args, "port", 0) <= 65535:
        raise SiteError(f"--port must be between 0 and 65535, got {args.port}")


def _build(args: argparse.Namespace, strict: bool = True) -> "object":
    report = build_site(args.store, args.out, work=args.work, strict=strict, site_url=args.site_url,
                        budget=int(args.budget_mb * 1e6))
    for warning in report.warnings:
        say(f"{PROG}: warning: {warning}", err=True)
    say(report.summary())
    return report


def _run(args: argparse.Namespace) -> int:
    _check(args)
    if args.command == "build":
        _build(args, strict=args.strict)
    elif args.command == "serve":
        from featvis_site.serve import serve_forever

        if args.build:
            _build(args)
        elif not (args.out / "index.html").is_file():
            raise SiteError(f"{args.out} holds no built site; drop --no-build")
        try:
            serve_forever(args.out, args.host, args.port)
        except OSError as exc:
            raise SiteError(f"cannot serve on {args.host}:{args.port}: {exc.strerror}") from None
    elif args.command == "publish":
        from featvis_site.publish import publish, reach

        target = reach(args.remote, args.branch)  # before the build: nothing is built or committed for a bad target
        report = _build(args)
        publish(report.site_dir, target, message=args.message, history=args.history,  # type: ignore[attr-defined]
                force=args.force)
        say(f"published {args.out} to {args.remote} {args.branch}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``featvis site ...``; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, message already printed)
        return int(exc.code or 0)
    _setup_logging(args.verbose)
    try:
        return _run(args)
    except SiteError as exc:
        say(f"{PROG}: error: {exc}", err=True)
        return 2
    except BuildFailed as exc:
        say(f"{PROG}: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        return 130
