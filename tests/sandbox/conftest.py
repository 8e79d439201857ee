"""Shared fixtures: one compiled runner per test session, in a cache under `.pytest_cache/`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CACHE = Path(__file__).resolve().parents[2] / ".pytest_cache" / "agentfactory"


@pytest.fixture(scope="session", autouse=True)
def _sandbox_cache() -> Iterator[Path]:
    """Point the sandbox cache at a fixed path so the runner is compiled at most once."""
    previous = os.environ.get("AGENTFACTORY_CACHE")
    os.environ["AGENTFACTORY_CACHE"] = str(CACHE)
    yield CACHE
    if previous is None:
        os.environ.pop("AGENTFACTORY_CACHE", None)
    else:
        os.environ["AGENTFACTORY_CACHE"] = previous


@pytest.fixture(scope="session")
def sandbox(_sandbox_cache: Path) -> object:
    """A ready Sandbox (the runner is built or loaded once per session)."""
    from sandbox import Sandbox

    box = Sandbox()
    box.ensure_ready()
    return box
