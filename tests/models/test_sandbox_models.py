"""Sandboxed agents reach language models only through the host: real wasmtime, real worker
processes, the real gateway against the local OpenAI-compatible server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.factory import AgentFactory
from core.plugins import make_plugin_manager
from models.audit import MemoryAuditSink
from models.context import calling
from models.gateway import ModelGateway
from models.ledger import MemoryLedger
from models.types import CallContext
from registry.archive import Package, build_files, read_archive
from runs.executor import execute
from runs.schemas import Claim
from sandbox import Sandbox
from sandbox.errors import AgentBudgetExceeded, AgentTimeout
from sandbox.limits import SandboxLimits
from sandbox.plugin import SandboxedAgentPlugin
from tests.models.conftest import SECRET
from tests.models.openai_stub_server import Answer, StubServer

pytestmark = pytest.mark.sandbox

KEY_ENV = "AF_TEST_STUB_KEY"

ASK = """
from agentfactory_guest import complete, ModelCallError

def process(task):
    try:
        answer = complete(task.get("model", "fast"), task["q"], max_tokens=10)
    except ModelCallError as exc:
        return {"refused": exc.code, "message": exc.message}
    return {"text": answer["text"], "usage": answer["usage"], "masked": answer["masked"]}
"""


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    from sandbox.pool import WorkerPool

    with WorkerPool(1) as pool:
        box = Sandbox(pool=pool)
        box.ensure_ready()
        yield box


@pytest.fixture
def gateway(
    stub: StubServer, ledger: MemoryLedger, audit: MemoryAuditSink,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., ModelGateway]:
    """A gateway whose provider needs a key (from the parent's environment)."""
    from tests.models.conftest import stub_config

    monkeypatch.setenv(KEY_ENV, SECRET)

    def build(**overrides: Any) -> ModelGateway:
        overrides.setdefault("providers", {"stub": {"api_base": stub.api_base,
                                                    "key_env": KEY_ENV}})
        return ModelGateway(stub_config(stub, **overrides), ledger, audit=audit)

    return build


def package(source: str, *, models: list[str] | None = None, model: str = "fast") -> Package:
    manifest: dict[str, Any] = {
        "name": "acme/asker", "version": "1.0.0", "summary": "Asks a model", "license": "MIT",
        "templates": ["templates/asker.json"], "examples": [],
    }
    if models is not None:
        manifest["models"] = models
    template = {"name": "acme/asker", "version": "1.0.0", "description": "Asks a model",
                "model": {"name": model}}
    return read_archive(build_files({
        "agent.json": json.dumps(manifest).encode(),
        "templates/asker.json": json.dumps(template).encode(),
        "process.py": source.encode(),
        "README.md": b"# asker\n",
    }))


def factory_with(plugin: SandboxedAgentPlugin) -> AgentFactory:
    factory = AgentFactory(plugin_manager=make_plugin_manager(load_entry_points=False),
                           include_builtin_templates=False)
    factory.register_plugin(plugin, name=plugin.name)
    return factory


def process(
    sandbox: Sandbox, gateway: ModelGateway, task: dict[str, Any], source: str = ASK,
    models: list[str] | None = None, limits: SandboxLimits | None = None,
) -> dict[str, Any]:
    plugin = SandboxedAgentPlugin(package(source, models=models), sandbox, limits=limits)
    with factory_with(plugin) as factory, calling(CallContext(run_id="run-1"), gateway):
        return factory.create_agent("acme/asker").process(task)


def test_a_sandboxed_agent_calls_a_model_through_the_host(
    sandbox: Sandbox, gateway: Callable[..., ModelGateway], stub: StubServer,
    audit: MemoryAuditSink, ledger: MemoryLedger,
) -> None:
    result = process(sandbox, gateway(), {"q": "Say hello"}, models=["fast"])
    assert result["text"] == "Hello from the stub."
    assert result["usage"]["model"] == "m1" and result["usage"]["output_tokens"] == 4
    [received] = stub.requests
    assert received.prompt_text == "Say hello"
    assert received.headers["authorization"] == f"Bearer {SECRET}"  # the host holds the key
    [event] = audit.events
    assert (event.action, event.outcome, event.agent, event.run_id, event.model) == \
        ("model.call", "ok", "acme/asker", "run-1", "fast")
    assert ledger.spent(run_id="run-1").tokens == 6  # counted against the run


SNOOP = """
import json

def process(task):
    # Past the import guard: the interpreter's own __import__, as a hostile agent would get it.
    real_import = json.__builtins__["__import__"] if isinstance(json.__builtins__, dict) \\
        else json.__builtins__.__import__
    os, sys = real_import("os"), real_import("sys")
    found = []
    for name, module in list(sys.modules.items()):
        for key, value in list(getattr(module, "__dict__", {}).items()):
            if isinstance(value, str) and task["key"] in value:
                found.append(f"{name}.{key}")
    try:
        socket = real_import("socket")
        connection = socket.create_connection(("127.0.0.1", task["port"]), 2)
        connection.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        network = "connected"
    except BaseException as exc:
        network = type(exc).__name__
    return {"environ": dict(os.environ), "found": found, "network": network}
"""


def test_the_guest_sees_no_key_and_cannot_reach_the_provider(
    sandbox: Sandbox, gateway: Callable[..., ModelGateway], stub: StubServer,
) -> None:
    port = int(stub.api_base.split(":")[2].split("/")[0])
    # The guest is told the key only to search for it; a real guest would not know it.
    result = process(sandbox, gateway(), {"key": SECRET[-12:], "port": port}, SNOOP,
                     models=["fast"])
    assert result["environ"] == {}
    assert result["found"] == []
    assert result["network"] != "connected"
    assert stub.requests == []
    for pid in sandbox.pool.pids():  # nor does the worker process hold it
        assert SECRET.encode() not in Path(f"/proc/{pid}/environ").read_bytes()


def test_model_use_the_package_does_not_declare_is_refused(
    sandbox: Sandbox, gateway: Callable[..., ModelGateway], stub: StubServer,
) -> None:
    result = process(sandbox, gateway(), {"q": "hello"})
    assert result["refused"] == "model_not_declared"
    assert "acme/asker declares no model use" in result["message"]
    assert stub.requests == []


def test_a_model_the_package_does_not_declare_is_refused(
    sandbox: Sandbox, gateway: Callable[..., ModelGateway], stub: StubServer,
) -> None:
    result = process(sandbox, gateway(), {"q": "hello", "model": "one"}, models=["fast"])
    assert result["refused"] == "model_not_allowed"
    assert "'one' is not declared" in result["message"]
    assert stub.requests == []


LOOP = """
from agentfactory_guest import complete, ModelCallError

def process(task):
    answered = 0
    for _ in range(5):
        try:
            complete("fast", "hello there", max_tokens=10)
            answered += 1
        except ModelCallError:
            pass  # swallowing the refusal does not get the agent past its budget
    return {"answered": answered}
"""


def test_a_budget_exceeded_mid_task_ends_the_task_budget_exceeded(
    sandbox: Sandbox, gateway: Callable[..., ModelGateway], stub: StubServer,
) -> None:
    # Each call is estimated at 3 + 10 tokens and uses 6: the third cannot fit in 20.
    with pytest.raises(AgentBudgetExceeded, match=r"budget_exceeded: run\.tokens is 20 tokens"):
        process(sandbox, gateway(budgets={"run_tokens": 20}), {}, LOOP, models=["fast"])
    assert len(stub.requests) == 2


def test_a_run_whose_sandboxed_agent_passes_its_budget_fails_budget_exceeded(
    sandbox: Sandbox, gateway: Callable[..., ModelGateway],
) -> None:
    plugin = SandboxedAgentPlugin(package(LOOP, models=["fast"]), sandbox)
    claim = Claim("run-2", 1, "test", "acme/asker", "acme/asker", {}, 5.0)
    with factory_with(plugin) as factory, \
            calling(CallContext(run_id="run-2"), gateway(budgets={"run_tokens": 20})):
        outcome = execute(factory, claim)
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error.code == "budget_exceeded"


def test_dlp_masks_a_secret_the_guest_sends(
    sandbox: Sandbox, gateway: Callable[..., ModelGateway], stub: StubServer,
    audit: MemoryAuditSink,
) -> None:
    secret = "AKIAIOSFODNN7EXAMPLE"
    result = process(sandbox, gateway(dlp="mask"), {"q": f"My key is {secret}"},
                     models=["fast"])
    assert "aws_access_key" in " ".join(result["masked"])
    [received] = stub.requests
    assert secret not in received.prompt_text and "AKIA" in received.prompt_text
    assert [(e.action, e.outcome) for e in audit.events] == \
        [("model.dlp", "masked"), ("model.call", "ok")]


def test_the_task_deadline_cuts_a_slow_model_call(
    sandbox: Sandbox, gateway: Callable[..., ModelGateway], stub: StubServer,
    audit: MemoryAuditSink,
) -> None:
    stub.script = [Answer("slow", delay_s=60)]
    with pytest.raises(AgentTimeout, match="deadline"):
        process(sandbox, gateway(), {"q": "take your time"}, models=["fast"],
                limits=SandboxLimits(timeout_s=1.0))
    assert [(e.action, e.outcome) for e in audit.events] == [("model.call", "model_timeout")]
    assert len(stub.requests) == 1  # cut, not retried, and the fallback model not tried
