"""The plugin manager through the real entry points, and its errors."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pluggy
import pytest

from core.entrypoints import CachedEntryPoint
from core.errors import PluginLoadError
from core.factory import AgentFactory
from core.plugins import implementations, load_entry_point_plugins, make_plugin_manager

BUILTINS = ("base_agent", "documentaliste", "genie_logiciel", "hardware", "security_analyst")
REPORT = Path(__file__).resolve().parents[2] / "examples" / "report.md"


def test_pm_fixture_is_fresh(pm: pluggy.PluginManager) -> None:
    assert sorted(name for name, _ in pm.list_name_plugin()) == [
        "plugins.base_agent",
        "plugins.security_validator",
    ]


def test_entry_points_register_every_builtin_plugin() -> None:
    pm = make_plugin_manager()
    names = {name for name, _ in pm.list_name_plugin()}
    assert {*BUILTINS, "security_validator"} <= names
    assert set(BUILTINS) <= implementations(pm)


def test_every_builtin_template_builds_an_agent_through_entry_points() -> None:
    with AgentFactory() as factory:
        for name in BUILTINS:
            agent = factory.create_agent(name)
            assert agent.implementation == name
        result = factory.create_agent("base_agent").process({"text": REPORT.read_text()})
        assert result["stats"]["lines"] == len(REPORT.read_text().strip().splitlines())


def test_documentaliste_indexes_the_example_report() -> None:
    with AgentFactory() as factory:
        result = factory.create_agent("documentaliste").process({"text": REPORT.read_text()})
    assert isinstance(result, dict) and result


@pytest.mark.parametrize("kind", [EntryPoint, CachedEntryPoint])
def test_plugin_failing_to_import_is_named(kind: type) -> None:
    broken = (
        EntryPoint(name="broken", value="no_such_module_xyz", group="agentfactory")
        if kind is EntryPoint
        else CachedEntryPoint("broken", "no_such_module_xyz")
    )
    with pytest.raises(PluginLoadError) as info:
        load_entry_point_plugins(make_plugin_manager(load_entry_points=False), [broken])
    assert info.value.name == "broken"
    assert "plugin 'broken' (no_such_module_xyz) could not be loaded" in str(info.value)
