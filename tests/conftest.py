"""Shared fixtures: the embedded model (loaded once), small render settings, an isolated Prefect home."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("NO_MKDOCS_2_WARNING", "true")


@pytest.fixture(scope="session")
def lite0():
    from featvis_core import load_model

    return load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def tiny():
    """A render config small enough for CPU tests: 48 px, 24 steps, few frames."""
    from featvis_core import preset

    return preset("fast", size=48, steps=24, frames=6, lr=0.1)
