"""Fixtures of the model layer's tests: a local OpenAI-compatible server, a configuration that
points at it, and a gateway over an in-memory ledger and audit sink."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from models.audit import MemoryAuditSink
from models.config import ModelsConfig, parse_config
from models.gateway import ModelGateway
from models.ledger import MemoryLedger
from tests.models.openai_stub_server import StubServer

SECRET = "sk-test-0123456789abcdefSECRET"


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer().start()
    yield server
    server.stop()


def stub_config(stub: StubServer, **overrides: Any) -> ModelsConfig:
    """Alias `fast` = stub:m1 then stub:m2; no waiting between retries; `overrides` on top."""
    document: dict[str, Any] = {
        "timeout_s": 5, "retries": 2, "backoff_s": 0, "backoff_max_s": 0, "max_tokens": 64,
        "aliases": {"fast": {"models": ["stub:m1", "stub:m2"]}, "one": ["stub:m1"]},
        "providers": {"stub": {"api_base": stub.api_base}},
        "prices": {"m1": {"input_per_1k": 1.0, "output_per_1k": 2.0},
                   "stub:m2": {"input_per_1k": 0.5, "output_per_1k": 0.5}},
    }
    document.update(overrides)
    return parse_config(document, "test")


@pytest.fixture
def audit() -> MemoryAuditSink:
    return MemoryAuditSink()


@pytest.fixture
def ledger() -> MemoryLedger:
    return MemoryLedger()


@pytest.fixture
def make_gateway(
    stub: StubServer, ledger: MemoryLedger, audit: MemoryAuditSink
) -> Callable[..., ModelGateway]:
    def build(**overrides: Any) -> ModelGateway:
        return ModelGateway(stub_config(stub, **overrides), ledger, audit=audit)

    return build
