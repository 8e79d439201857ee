"""The gateway against a real OpenAI-compatible HTTP server on 127.0.0.1 (the `llm` provider
code end to end): streaming, usage, retries, fallback, timeouts, malformed answers, keys."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from models.audit import MemoryAuditSink
from models.config import ModelsConfig
from models.errors import (
    AllModelsFailed,
    MalformedResponse,
    ModelNotAllowed,
    ModelTimeout,
    NoProviderConfigured,
    ProviderError,
)
from models.gateway import ModelGateway
from models.ledger import MemoryLedger
from models.types import CallContext, CompletionRequest, Message, Usage
from tests.models.conftest import SECRET
from tests.models.openai_stub_server import Answer, StubServer

Gateway = Callable[..., ModelGateway]


def ask(model: str = "fast", text: str = "hello there", **context: object) -> CompletionRequest:
    return CompletionRequest(model, (Message("system", "be brief"), Message("user", text)),
                             context=CallContext(**context))  # type: ignore[arg-type]


def test_streamed_tokens_arrive_in_order_and_usage_is_the_servers(
    make_gateway: Gateway, stub: StubServer, ledger: MemoryLedger
) -> None:
    stub.script = [Answer(text="one two three")]
    tokens: list[str] = []
    usages: list[Usage] = []
    completion = make_gateway().complete(
        ask(on_token=tokens.append, on_usage=usages.append, agent="a", run_id="r1"))
    assert tokens == ["one", " two", " three"]
    assert completion.text == "one two three"
    sent = stub.requests[0].body
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["model"] == "m1" and sent["max_tokens"] == 64
    # the stub counts words: 4 in the prompt ("be brief", "hello there"), 3 in the answer
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (4, 3)
    assert completion.usage.cost == pytest.approx((4 * 1.0 + 3 * 2.0) / 1000)
    assert usages == [completion.usage]
    assert ledger.spent(run_id="r1").tokens == 7


def test_a_call_without_streaming_reports_usage_too(
    make_gateway: Gateway, stub: StubServer
) -> None:
    completion = make_gateway().complete(ask())
    assert "stream" not in stub.requests[0].body or not stub.requests[0].body["stream"]
    assert completion.text == "Hello from the stub."
    assert completion.usage.as_dict()["output_tokens"] == 4
    assert completion.usage.provider == "stub" and completion.usage.model == "m1"


def test_429_and_5xx_are_retried_on_the_same_model(
    make_gateway: Gateway, stub: StubServer
) -> None:
    stub.script = [Answer("status", status=429), Answer("status", status=503), Answer()]
    completion = make_gateway().complete(ask())
    assert completion.text == "Hello from the stub."
    assert [r.body["model"] for r in stub.requests] == ["m1", "m1", "m1"]


def test_a_model_that_keeps_failing_falls_back_to_the_next(
    make_gateway: Gateway, stub: StubServer, audit: MemoryAuditSink
) -> None:
    stub.script = [Answer("status", status=500)] * 3 + [Answer(text="from m2")]
    completion = make_gateway().complete(ask())
    assert completion.text == "from m2"
    assert [r.body["model"] for r in stub.requests] == ["m1", "m1", "m1", "m2"]
    assert completion.usage.model == "m2"
    assert audit.events[-1].outcome == "ok"


def test_every_model_failing_names_each_failure(make_gateway: Gateway, stub: StubServer) -> None:
    stub.script = [Answer("status", status=502)]
    with pytest.raises(AllModelsFailed) as caught:
        make_gateway(retries=0).complete(ask())
    assert [f.status for f in caught.value.failures] == [502, 502]
    assert "stub:m1 failed (HTTP 502)" in str(caught.value)


def test_a_client_error_is_not_retried(make_gateway: Gateway, stub: StubServer) -> None:
    stub.script = [Answer("status", status=400)]
    with pytest.raises(ProviderError) as caught:
        make_gateway().complete(ask("one"))
    assert caught.value.status == 400
    assert len(stub.requests) == 1


def test_a_slow_model_times_out_and_the_next_one_answers(
    make_gateway: Gateway, stub: StubServer
) -> None:
    stub.script = [Answer("slow", delay_s=30), Answer(text="quick")]
    completion = make_gateway(timeout_s=0.3).complete(ask())
    assert completion.text == "quick"
    assert [r.body["model"] for r in stub.requests] == ["m1", "m2"]  # a timeout is not retried


def test_a_timeout_is_a_typed_error(make_gateway: Gateway, stub: StubServer) -> None:
    stub.script = [Answer("slow", delay_s=30)]
    with pytest.raises(ModelTimeout) as caught:
        make_gateway(timeout_s=0.3).complete(ask("one"))
    assert str(caught.value) == "model stub:m1 did not answer within 0.3 s"


def test_a_malformed_body_is_a_typed_error(make_gateway: Gateway, stub: StubServer) -> None:
    stub.script = [Answer("malformed")]
    with pytest.raises(MalformedResponse) as caught:
        make_gateway().complete(CompletionRequest("one", (Message("user", "x"),)))
    assert caught.value.code == "malformed_response"
    assert len(stub.requests) == 1  # garbage is not asked for again


def test_a_key_echoed_by_the_provider_is_scrubbed(
    stub: StubServer, monkeypatch: pytest.MonkeyPatch, ledger: MemoryLedger,
    audit: MemoryAuditSink, caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.models.conftest import stub_config

    monkeypatch.setenv("STUB_KEY", SECRET)
    config = stub_config(stub, providers={"stub": {"api_base": stub.api_base,
                                                   "key_env": "STUB_KEY"}})
    stub.script = [Answer("echo_key")]
    with pytest.raises(ProviderError) as caught:
        ModelGateway(config, ledger, audit=audit).complete(
            CompletionRequest("one", (Message("user", "x"),)))
    assert stub.requests[0].headers["authorization"] == f"Bearer {SECRET}"  # it was sent
    assert caught.value.status == 401
    assert SECRET not in str(caught.value) and "[redacted]" in str(caught.value)
    assert SECRET not in repr(audit.events) and SECRET not in caplog.text


def test_no_provider_configured_is_one_line_saying_how(ledger: MemoryLedger) -> None:
    gateway = ModelGateway(ModelsConfig(), ledger)
    with pytest.raises(NoProviderConfigured) as caught:
        gateway.complete(CompletionRequest("fast", (Message("user", "x"),)))
    message = str(caught.value)
    assert "\n" not in message
    assert "no language model is configured for 'fast'" in message
    assert "models.toml" in message and "docs/models.md" in message


def test_a_model_the_template_does_not_declare_is_refused(
    make_gateway: Gateway, stub: StubServer
) -> None:
    with pytest.raises(ModelNotAllowed):
        make_gateway().complete(ask("stub:m2", allowed_models=("fast",)))
    assert stub.requests == []


def test_acomplete_answers_from_a_worker_thread(make_gateway: Gateway) -> None:
    import asyncio

    completion = asyncio.run(make_gateway().acomplete(ask()))
    assert completion.text == "Hello from the stub."
