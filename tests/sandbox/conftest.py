"""Shared fixtures: one ready sandbox per test session (its cache is set in `tests/conftest.py`)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def sandbox() -> object:
    """A ready Sandbox (the runner is built or loaded once per session)."""
    from sandbox import Sandbox

    box = Sandbox()
    box.ensure_ready()
    return box
