"""The planning supervisor: a model splits the task, checked against a schema, against the local
OpenAI-compatible server; and the built-in `planning_supervisor` template out of the box."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from core.config import FactorySettings
from core.errors import TemplateVetoed
from core.factory import AgentFactory
from models.context import calling
from models.errors import BudgetExceeded, PlanInvalid
from models.gateway import ModelGateway
from models.ledger import MemoryLedger
from models.types import CallContext
from tests.core.conftest import write_template
from tests.models.openai_stub_server import Answer, StubServer

SECRET_TEXT = "deploy with AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY now"


@pytest.fixture
def factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AgentFactory]:
    monkeypatch.setenv("AGENTFACTORY_HOME", str(tmp_path / "home"))  # no installed agents
    with AgentFactory(FactorySettings(template_dirs=[tmp_path])) as made:
        yield made


@pytest.fixture
def planner_gateway(make_gateway: Callable[..., ModelGateway]) -> ModelGateway:
    return make_gateway(aliases={"smart": ["stub:m1"]})


def plan(*subtasks: tuple[str, str, dict[str, Any]]) -> Answer:
    return Answer(text=json.dumps({"subtasks": [
        {"id": id_, "agent": agent, "input": input_} for id_, agent, input_ in subtasks
    ]}))


def run_planner(factory: AgentFactory, gateway: ModelGateway, task: dict[str, Any]) -> Any:
    with calling(CallContext(run_id="plan-run"), gateway):
        return factory.create_agent("planning_supervisor").process(task)


def test_a_valid_plan_is_routed_to_the_agents_it_names(
    factory: AgentFactory, planner_gateway: ModelGateway, stub: StubServer,
    ledger: MemoryLedger,
) -> None:
    stub.script = [plan(("summary", "documentaliste", {"text": "# Notes\n\nAgents help. A lot."}),
                        ("secrets", "security_analyst", {"text": SECRET_TEXT}))]
    result = run_planner(factory, planner_gateway, {"request": "summarize, then check secrets"})
    assert result["status"] == "ok"
    assert [(r["subtask"], r["agent"], r["status"]) for r in result["trace"]] == [
        ("summary", "documentaliste", "ok"), ("secrets", "security_analyst", "ok")]
    assert result["answer"]["secrets"]["risk"] != "none"
    [request] = stub.requests
    system = request.body["messages"][0]["content"]
    assert "- documentaliste: Indexes and summarizes" in system  # the model is told the agents
    assert request.body["response_format"] == {"type": "json_object"}
    assert ledger.spent(run_id="plan-run").tokens > 0  # the plan is paid by the run


def test_an_invalid_plan_is_retried_then_refused(
    factory: AgentFactory, planner_gateway: ModelGateway, stub: StubServer,
) -> None:
    stub.script = [Answer(text="Sure! Here is my plan: first summarize..."),
                   Answer(text='{"subtasks": []}'),
                   Answer(text='{"subtasks": [{"id": "a", "agent": "documentaliste"}]}')]
    with pytest.raises(PlanInvalid) as caught:
        run_planner(factory, planner_gateway, {"request": "anything"})
    assert caught.value.attempts == 3
    assert caught.value.errors == ("subtasks/0: 'input' is a required property",)
    assert len(stub.requests) == 3
    feedback = stub.requests[1].body["messages"][-1]["content"]
    assert feedback.startswith("That plan is not valid: not JSON")


def test_a_plan_naming_an_agent_the_supervisor_does_not_list_is_refused(
    factory: AgentFactory, planner_gateway: ModelGateway, stub: StubServer,
) -> None:
    stub.script = [plan(("wipe", "shell_runner", {"command": "rm -rf /"}))]
    with pytest.raises(PlanInvalid, match="'shell_runner' is not one of") as caught:
        run_planner(factory, planner_gateway, {"request": "clean up"})
    assert caught.value.attempts == 3 and len(stub.requests) == 3


def test_the_plan_counts_against_the_run_budget(
    factory: AgentFactory, make_gateway: Callable[..., ModelGateway], stub: StubServer,
) -> None:
    gateway = make_gateway(aliases={"smart": ["stub:m1"]}, budgets={"run_tokens": 100})
    with pytest.raises(BudgetExceeded, match=r"run\.tokens"):
        run_planner(factory, gateway, {"request": "anything"})
    assert stub.requests == []  # the estimate (max_tokens 1500) could not fit


def test_strategy_model_needs_a_model(tmp_path: Path) -> None:
    write_template(tmp_path, {
        "name": "modelless", "version": "1.0.0", "implementation": "supervisor",
        "capabilities": ["orchestration.delegate"],
        "parameters": {"agents": ["documentaliste"], "strategy": "model"},
    })
    with AgentFactory(FactorySettings(template_dirs=[tmp_path])) as factory, \
            pytest.raises(TemplateVetoed, match="strategy 'model' needs the template's model"):
        factory.create_agent("modelless")


def test_the_builtin_template_says_how_to_configure_a_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTFACTORY_HOME", str(tmp_path))
    monkeypatch.delenv("AGENTFACTORY_MODELS", raising=False)
    monkeypatch.delenv("AGENTFACTORY_CONFIG", raising=False)
    task = tmp_path / "task.json"
    task.write_text('{"request": "review my project"}', encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        main(["run", "planning_supervisor", "--input", str(task)])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no language model is configured for 'smart'" in err
