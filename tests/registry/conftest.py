from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from registry import LocalBlobStore, Registry, RegistryConfig
from registry.db import make_engine
from tests.registry.factories import TestPublisher, make_publisher


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    reg = Registry(engine, LocalBlobStore(tmp_path / "blobs"),
                   RegistryConfig(lookalike_downloads=3))
    yield reg
    reg.close()


@pytest.fixture
def acme(registry: Registry) -> TestPublisher:
    return make_publisher(registry, "acme")
