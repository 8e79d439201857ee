"""Workflow templates: format, validation at load time, and what a run returns."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest

import plugins.workflow
from core.agent import Agent
from core.config import FactorySettings
from core.errors import (
    AgentInputError,
    OrchestrationTooDeep,
    StepFailed,
    TemplateValidationError,
    WorkflowError,
)
from core.factory import AgentFactory
from core.hookspecs import hookimpl
from core.plugins import make_plugin_manager
from core.template import template_json_schema
from tests.core.conftest import template_doc, write_template


class StubAgents:
    """Deterministic agents: `echo` returns its task, `boom` always fails, `meet` waits at a
    barrier (two `meet` steps finish only if they run at the same time)."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(2, timeout=10)

    @hookimpl
    def agentfactory_implementations(self) -> list[str]:
        return ["echo", "boom", "meet"]

    @hookimpl
    def agentfactory_process(self, agent: Agent, task: dict[str, Any]) -> dict[str, Any] | None:
        if agent.implementation == "echo":
            return {"who": agent.name, "task": task, "count": len(task)}
        if agent.implementation == "boom":
            raise AgentInputError("boom: this agent always fails")
        if agent.implementation == "meet":
            self.barrier.wait()
            return {"who": agent.name, "task": task}
        return None


Make = Callable[..., AgentFactory]


@pytest.fixture
def factory(template_dir: Path) -> Iterator[AgentFactory]:
    pm = make_plugin_manager(load_entry_points=False, plugins=[plugins.workflow, StubAgents()])
    for name, implementation in (("a", "echo"), ("b", "echo"), ("c", "echo"), ("bad", "boom"),
                                 ("m1", "meet"), ("m2", "meet")):
        write_template(template_dir, template_doc(name, implementation=implementation))
    with AgentFactory(
        FactorySettings(template_dirs=[template_dir]), pm, include_builtin_templates=False
    ) as made:
        yield made


def workflow(name: str, steps: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    doc = {"name": name, "version": "1.0.0", "workflow": {"steps": steps, **fields}}
    return doc


def add(factory: AgentFactory, template_dir: Path, doc: dict[str, Any]) -> None:
    write_template(template_dir, doc)
    factory.templates.reload()


def test_steps_run_in_sequence_with_mapped_inputs(
    factory: AgentFactory, template_dir: Path
) -> None:
    add(factory, template_dir, workflow("flow", [
        {"name": "first", "agent": "a", "input": {"text": {"from": "/input/text"}, "n": 1}},
        {"name": "second", "agent": "b",
         "input": {"prev": {"from": "/steps/first/output/task/text"},
                   "quoted": {"literal": {"from": "not a pointer"}},
                   "missing": {"from": "/input/nothing", "default": "fallback"}}},
    ], output={"final": {"from": "/steps/second/output/task"}}))

    result = factory.create_agent("flow").process({"text": "hello"})

    assert result["output"] == {"final": {
        "prev": "hello", "quoted": {"from": "not a pointer"}, "missing": "fallback"
    }}
    assert [(s["name"], s["agent"], s["version"], s["status"]) for s in result["steps"]] == [
        ("first", "a", "1.0.0", "ok"), ("second", "b", "1.0.0", "ok")
    ]
    assert result["steps"][0]["output"]["task"] == {"text": "hello", "n": 1}


def test_a_condition_skips_a_step(factory: AgentFactory, template_dir: Path) -> None:
    add(factory, template_dir, workflow("cond", [
        {"name": "look", "agent": "a"},
        {"name": "big", "agent": "b", "when": {"path": "/steps/look/output/count", "op": "gt",
                                               "value": 1}},
        {"name": "small", "agent": "c", "when": {"path": "/steps/look/output/count", "op": "le",
                                                 "value": 1}},
        {"name": "report", "agent": "a", "after": ["big", "small"],
         "input": {"big": {"from": "/steps/big/status"},
                   "small": {"from": "/steps/small/output/who", "default": None}}},
    ]))

    result = factory.create_agent("cond").process({"text": "one field"})

    assert [s["status"] for s in result["steps"]] == ["ok", "skipped", "ok", "ok"]
    assert result["output"]["task"] == {"big": "skipped", "small": "c"}
    assert "output" not in result["steps"][1]


@pytest.mark.parametrize(("op", "value", "runs"), [
    ("eq", "hello", True), ("ne", "hello", False), ("in", ["x", "hello"], True),
    ("contains", "ell", True), ("exists", None, True), ("not_exists", None, False),
    ("ge", "hello", True), ("lt", "a", False),
])
def test_every_condition_operator(
    factory: AgentFactory, template_dir: Path, op: str, value: Any, runs: bool
) -> None:
    when: dict[str, Any] = {"path": "/input/text", "op": op}
    if value is not None:
        when["value"] = value
    add(factory, template_dir, workflow("ops", [{"name": "s", "agent": "a", "when": when}],
                                        output={"status": {"from": "/steps/s/status"}}))
    result = factory.create_agent("ops").process({"text": "hello"})
    assert result["output"]["status"] == ("ok" if runs else "skipped")


def test_parallel_steps_fan_out_and_fan_in_in_declared_order(
    factory: AgentFactory, template_dir: Path
) -> None:
    # m1 and m2 each wait for the other at a barrier: they finish only if they run at once.
    add(factory, template_dir, workflow("fan", [
        {"name": "start", "agent": "a"},
        {"name": "left", "agent": "m1", "after": ["start"], "input": {"side": "left"}},
        {"name": "right", "agent": "m2", "after": ["start"], "input": {"side": "right"}},
        {"name": "join", "agent": "b", "after": ["left", "right"],
         "input": {"sides": [{"from": "/steps/left/output/task/side"},
                             {"from": "/steps/right/output/task/side"}]}},
    ]))

    result = factory.create_agent("fan").process({})

    assert [s["name"] for s in result["steps"]] == ["start", "left", "right", "join"]
    assert all(s["status"] == "ok" for s in result["steps"])
    assert result["output"]["task"] == {"sides": ["left", "right"]}


def test_a_failing_step_fails_the_workflow_naming_it(
    factory: AgentFactory, template_dir: Path
) -> None:
    add(factory, template_dir, workflow("fails", [
        {"name": "ok", "agent": "a"}, {"name": "explode", "agent": "bad"},
        {"name": "never", "agent": "b"},
    ]))
    with pytest.raises(StepFailed) as caught:
        factory.create_agent("fails").process({})
    assert caught.value.step == "explode"
    assert str(caught.value) == (
        "workflow 'fails': step 'explode' (bad) failed: boom: this agent always fails"
    )
    assert [r["status"] for r in caught.value.trace] == ["ok", "failed"]  # type: ignore[index]


def test_a_pointer_to_nowhere_is_a_clear_error(factory: AgentFactory, template_dir: Path) -> None:
    add(factory, template_dir, workflow("nowhere", [
        {"name": "s", "agent": "a", "input": {"text": {"from": "/input/absent/deeper"}}},
    ]))
    with pytest.raises(WorkflowError, match=r"step 's': input: /input/absent/deeper points to "
                                            r"nothing"):
        factory.create_agent("nowhere").process({"text": "x"})


@pytest.mark.parametrize(("steps", "message"), [
    ([{"name": "s", "agent": "ghost"}],
     "workflow.steps[0].agent: step 's': no agent named 'ghost'"),
    ([{"name": "s", "agent": "a", "version": ">=2"}],
     "step 's': a 1.0.0 does not satisfy '>=2'"),
    ([{"name": "s", "agent": "a", "after": ["nope"]}], "step 's': after: unknown step 'nope'"),
    ([{"name": "s", "agent": "a", "input": {"x": {"from": "/steps/ghost/output"}}}],
     "step 's': /steps/ghost/output names unknown step 'ghost'"),
    ([{"name": "x", "agent": "a", "after": ["y"]}, {"name": "y", "agent": "b", "after": ["x"]}],
     "steps form a cycle: x -> y -> x"),
    ([{"name": "x", "agent": "a", "after": [], "input": {"v": {"from": "/steps/y/output"}}},
      {"name": "y", "agent": "b", "after": [], "input": {"v": {"from": "/steps/x/output"}}}],
     "steps form a cycle"),
    ([{"name": "s", "agent": "a"}, {"name": "s", "agent": "b"}], "step name 's' is used twice"),
    ([{"name": "s", "agent": "a", "when": {"path": "/input/x", "op": "gt"}}],
     "op 'gt' needs a number or a string value"),
])
def test_a_broken_workflow_is_refused_when_loaded(
    factory: AgentFactory, template_dir: Path, steps: list[dict[str, Any]], message: str
) -> None:
    add(factory, template_dir, workflow("broken", steps))
    with pytest.raises(TemplateValidationError) as caught:
        factory.create_agent("broken")
    assert message in str(caught.value)


def test_workflows_that_call_each_other_are_refused(
    factory: AgentFactory, template_dir: Path
) -> None:
    write_template(template_dir, workflow("ping", [{"name": "go", "agent": "pong"}]))
    add(factory, template_dir, workflow("pong", [{"name": "back", "agent": "ping"}]))
    with pytest.raises(TemplateValidationError, match="workflows call each other: ping -> pong "
                                                      "-> ping"):
        factory.create_agent("ping")


def test_hostile_documents_are_refused_with_a_bound(
    factory: AgentFactory, template_dir: Path
) -> None:
    many = [{"name": f"s{i}", "agent": "a"} for i in range(10_000)]
    add(factory, template_dir, workflow("many", many))
    with pytest.raises(TemplateValidationError, match="at most 64 steps, not 10000"):
        factory.create_agent("many")

    deep: Any = "leaf"
    for _ in range(5_000):
        deep = {"k": deep}
    doc = workflow("deep", [{"name": "s", "agent": "a", "input": deep}])
    with pytest.raises(TemplateValidationError, match="at most 16 levels deep"):
        from core.loader import parse_template

        parse_template(doc, "deep.json")

    wide = {f"k{i}": i for i in range(3_000)}
    add(factory, template_dir, workflow("wide", [{"name": "s", "agent": "a", "input": wide}]))
    with pytest.raises(TemplateValidationError, match="at most 2000 values"):
        factory.create_agent("wide")


def test_a_workflow_that_inherits_steps_calling_itself_is_refused(
    factory: AgentFactory, template_dir: Path
) -> None:
    write_template(template_dir, workflow("base", [{"name": "again", "agent": "loop"}]))
    add(factory, template_dir, {"name": "loop", "version": "1.0.0", "extends": "base"})
    with pytest.raises(TemplateValidationError, match="workflows call each other: loop -> loop"):
        factory.create_agent("loop")


def test_workflows_nested_deeper_than_the_limit_stop_with_a_clear_error(
    factory: AgentFactory, template_dir: Path
) -> None:
    for level in range(10):  # w0 -> w1 -> ... -> w9 -> a: no cycle, but ten levels deep
        target = f"w{level + 1}" if level < 9 else "a"
        write_template(template_dir, workflow(f"w{level}", [{"name": "s", "agent": target}]))
    factory.templates.reload()
    with pytest.raises(OrchestrationTooDeep, match="'w9' would run 9 levels deep, over the "
                                                   "limit of 8"):
        factory.create_agent("w0").process({})


def test_a_child_workflow_replaces_its_parents_steps(
    factory: AgentFactory, template_dir: Path
) -> None:
    write_template(template_dir, workflow("parent", [{"name": "p", "agent": "a"}]))
    add(factory, template_dir, {"name": "child", "version": "1.0.0", "extends": "parent",
                                "workflow": {"steps": [{"name": "c", "agent": "b"}]}})
    result = factory.create_agent("child").process({})
    assert [s["name"] for s in result["steps"]] == ["c"]


def test_an_agent_template_has_no_workflow_key_and_the_schema_describes_workflows(
    factory: AgentFactory,
) -> None:
    assert "workflow" not in factory.templates.get("a").document()
    schema = template_json_schema()
    assert "workflow" in schema["properties"]
    assert {"Workflow", "Step", "Condition"} <= set(schema["$defs"])


def test_a_workflow_with_another_implementation_is_refused(
    factory: AgentFactory, template_dir: Path
) -> None:
    add(factory, template_dir, {**workflow("odd", [{"name": "s", "agent": "a"}]),
                                "implementation": "echo"})
    with pytest.raises(TemplateValidationError, match="has implementation 'workflow', not 'echo'"):
        factory.create_agent("odd")


def test_the_workflow_implementation_is_a_registered_plugin() -> None:
    pm: pluggy.PluginManager = make_plugin_manager()
    assert pm.get_plugin("workflow") is plugins.workflow
