"""Fixtures for the core tests: a fresh plugin manager per test, template files, fake clocks."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest
import zstandard

import plugins.base_agent
import plugins.security_validator
from core.config import FactorySettings
from core.factory import AgentFactory
from core.plugins import make_plugin_manager

WriteTemplate = Callable[..., Path]


def template_doc(name: str, **fields: Any) -> dict[str, Any]:
    """A minimal valid template document (the factory of test data)."""
    doc: dict[str, Any] = {"name": name, "version": "1.0.0", "implementation": "base_agent"}
    doc.update(fields)
    return doc


def write_template(directory: Path, doc: dict[str, Any], *, zst: bool = False) -> Path:
    """Write `doc` as `<name>.json` (or `.json.zst`) in `directory`, atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    data = json.dumps(doc).encode()
    suffix = ".json.zst" if zst else ".json"
    if zst:
        data = zstandard.ZstdCompressor().compress(data)
    path = directory / f"{str(doc['name']).replace('/', '__')}{suffix}"
    tmp = directory / f".{path.name}.tmp"
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


class FakeClock:
    """A monotonic clock the test advances by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def pm() -> pluggy.PluginManager:
    """A fresh plugin manager with the generic implementation and the security validator."""
    return make_plugin_manager(
        load_entry_points=False, plugins=[plugins.base_agent, plugins.security_validator]
    )


@pytest.fixture
def template_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "templates"
    directory.mkdir()
    return directory


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_factory(
    pm: pluggy.PluginManager, template_dir: Path, clock: FakeClock
) -> Iterator[Callable[..., AgentFactory]]:
    """Build factories over `template_dir` only (no built-ins), closed after the test."""
    made: list[AgentFactory] = []

    def build(**settings: Any) -> AgentFactory:
        settings.setdefault("template_dirs", [template_dir])
        factory = AgentFactory(
            FactorySettings(**settings), pm, include_builtin_templates=False, clock=clock
        )
        made.append(factory)
        return factory

    yield build
    for factory in made:
        factory.close()
