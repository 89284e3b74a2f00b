"""Errors the CLI reports as one readable line (exit code 2) instead of a traceback."""

from __future__ import annotations


class SiteError(Exception):
    """A problem the user can fix (missing store, no manifests, bad output path, ...)."""


class BuildFailed(Exception):
    """The build ran but must not be published (broken link, missing asset in strict mode)."""
