"""The agent factory: creation, processing through hooks, plugins, security, stats."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pluggy
import pytest

from core.agent import Agent
from core.errors import (
    AgentFactoryError,
    AgentInputError,
    NoImplementation,
    PluginError,
    TemplateVetoed,
)
from core.factory import AgentFactory
from core.hookspecs import hookimpl
from tests.core.conftest import template_doc, write_template

MakeFactory = Callable[..., AgentFactory]


class Recorder:
    """A plugin that records lifecycle hooks and can refuse tasks."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def agentfactory_agent_created(self, agent: Agent) -> None:
        self.calls.append(f"created {agent.template.name}")

    @hookimpl
    def agentfactory_before_process(self, agent: Agent, task: dict[str, Any]) -> None:
        if task.get("forbidden"):
            raise AgentInputError("forbidden task")
        self.calls.append("before")

    @hookimpl
    def agentfactory_after_process(
        self, agent: Agent, task: dict[str, Any], result: dict[str, Any]
    ) -> None:
        self.calls.append(f"after {result['stats']['words']}")


class Shouter:
    @hookimpl
    def agentfactory_implementations(self) -> list[str]:
        return ["shouter"]

    @hookimpl
    def agentfactory_templates(self) -> list[Any]:
        return [{"name": "shouter", "version": "1.0", "implementation": "shouter"}]

    @hookimpl
    def agentfactory_process(self, agent: Agent, task: dict[str, Any]) -> dict[str, Any] | None:
        if agent.implementation != "shouter":
            return None
        return {"text": str(task.get("text", "")).upper()}


def test_agent_processes_with_template_parameters_and_config(
    make_factory: MakeFactory, template_dir: Path
) -> None:
    write_template(template_dir, template_doc("echo", parameters={"lowercase": True}))
    factory = make_factory()
    agent = factory.create_agent("echo")
    result = agent.process({"text": "Hello  \r\n\n\n\nWORLD  "})
    assert result["text"] == "hello\n\nworld"
    assert result["stats"] == {
        "chars": 12,
        "words": 2,
        "lines": 3,
        "blank_lines": 1,
        "unique_words": 2,
    }
    shouty = factory.create_agent("echo", {"lowercase": False, "max_chars": 5})
    assert shouty.process({"text": "Hello WORLD"})["text"] == "Hello"


def test_agents_have_unique_ids_and_own_configs(
    make_factory: MakeFactory, template_dir: Path
) -> None:
    write_template(template_dir, template_doc("echo"))
    factory = make_factory()
    config = {"max_chars": 3}
    agents = [factory.create_agent("echo", config) for _ in range(100)]
    assert len({a.id for a in agents}) == 100
    config["max_chars"] = 1
    assert agents[0].config == {"max_chars": 3}
    assert agents[0].template is agents[1].template  # shared resolved snapshot


def test_hooks_run_around_processing(
    make_factory: MakeFactory, template_dir: Path, pm: pluggy.PluginManager
) -> None:
    recorder = Recorder()
    pm.register(recorder)
    write_template(template_dir, template_doc("echo"))
    agent = make_factory().create_agent("echo")
    agent.process({"text": "one two three"})
    assert recorder.calls == ["created echo", "before", "after 3"]
    with pytest.raises(AgentInputError, match="forbidden task"):
        agent.process({"forbidden": True})
    assert recorder.calls[-1] == "after 3"  # after_process not called for a refused task


def test_task_must_be_an_object(make_factory: MakeFactory, template_dir: Path) -> None:
    write_template(template_dir, template_doc("echo"))
    agent = make_factory().create_agent("echo")
    with pytest.raises(AgentInputError, match="JSON object"):
        agent.process(["text"])  # type: ignore[arg-type]  # the error under test
    with pytest.raises(AgentInputError, match="config"):
        make_factory().create_agent("echo", "max_chars=3")  # type: ignore[arg-type]


def test_missing_implementation_is_refused_at_creation(
    make_factory: MakeFactory, template_dir: Path
) -> None:
    write_template(template_dir, template_doc("orphan", implementation="nobody"))
    with pytest.raises(NoImplementation) as info:
        make_factory().create_agent("orphan")
    assert (info.value.template, info.value.implementation) == ("orphan", "nobody")


def test_denied_tool_is_vetoed_unless_the_operator_allows_it(
    make_factory: MakeFactory, template_dir: Path
) -> None:
    write_template(template_dir, template_doc("ops", tools=["text_reader", "shell:bash", "http"]))
    with pytest.raises(TemplateVetoed) as info:
        make_factory().create_agent("ops")
    assert len(info.value.reasons) == 2
    assert "'shell:bash' is on the deny-list" in str(info.value)
    with pytest.raises(TemplateVetoed, match="'http'"):
        make_factory(allowed_tools=frozenset({"shell"})).create_agent("ops")
    agent = make_factory(allowed_tools=frozenset({"shell", "HTTP"})).create_agent("ops")
    assert agent.template.tools == ["text_reader", "shell:bash", "http"]


def test_denied_tool_inherited_from_a_parent_is_vetoed(
    make_factory: MakeFactory, template_dir: Path
) -> None:
    write_template(template_dir, template_doc("risky", tools=["network"]))
    write_template(template_dir, template_doc("child", extends="risky"))
    write_template(
        template_dir,
        template_doc("cleaned", extends="risky", **{"$remove": {"tools": ["network"]}}),
    )
    factory = make_factory()
    with pytest.raises(TemplateVetoed, match="network"):
        factory.create_agent("child")
    assert factory.create_agent("cleaned").template.tools == []


def test_any_plugin_may_veto(make_factory: MakeFactory, template_dir: Path) -> None:
    class NoDrafts:
        @hookimpl
        def agentfactory_validate_template(self, template: Any, settings: Any) -> list[str]:
            return ["drafts are not allowed"] if template.version.endswith("dev0") else []

    write_template(template_dir, template_doc("draft", version="1.0.dev0"))
    factory = make_factory()
    assert factory.create_agent("draft").template.version == "1.0.dev0"
    factory.register_plugin(NoDrafts(), name="no-drafts")
    with pytest.raises(TemplateVetoed, match="drafts are not allowed"):
        factory.create_agent("draft")
    factory.unregister_plugin("no-drafts")
    assert factory.create_agent("draft").name == "draft"


def test_registered_plugin_contributes_templates_and_implementation(
    make_factory: MakeFactory,
) -> None:
    factory = make_factory()
    with pytest.raises(AgentFactoryError):
        factory.create_agent("shouter")
    factory.register_plugin(Shouter(), name="shouter")
    assert factory.create_agent("shouter").process({"text": "hey"}) == {"text": "HEY"}
    factory.unregister_plugin("shouter")
    with pytest.raises(AgentFactoryError, match="shouter"):
        factory.create_agent("shouter")
    with pytest.raises(PluginError, match="no plugin named 'shouter'"):
        factory.unregister_plugin("shouter")


def test_bulk_create_and_stats(make_factory: MakeFactory, template_dir: Path) -> None:
    write_template(template_dir, template_doc("a"))
    write_template(template_dir, template_doc("b"))
    factory = make_factory()
    agents = factory.bulk_create([("a", None)] * 3 + [("b", {"max_chars": 1})] * 2)
    assert [a.name for a in agents] == ["a", "a", "a", "b", "b"]
    factory.create_agent("a")
    stats = factory.stats()
    assert stats.agents_created == 6
    assert stats.per_template == {"a": 4, "b": 2}
    assert "base_agent" in stats.implementations
    assert stats.templates.cache_misses == 2  # bulk resolves each template once


def test_async_creation(make_factory: MakeFactory, template_dir: Path) -> None:
    write_template(template_dir, template_doc("a"))
    factory = make_factory()

    async def create_many() -> list[Agent]:
        return await asyncio.gather(*(factory.acreate_agent("a") for _ in range(5)))

    agents = asyncio.run(create_many())
    assert len({a.id for a in agents}) == 5


def test_factory_closes_its_watcher(make_factory: MakeFactory, template_dir: Path) -> None:
    write_template(template_dir, template_doc("a"))
    with make_factory(hot_reload=True) as factory:
        assert factory.create_agent("a").name == "a"
    assert factory.create_agent("a").name == "a"  # still serves after close
