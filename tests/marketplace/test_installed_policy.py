"""Which installed agents run natively: the operator's sandbox policy and trusted publishers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.config import FactorySettings
from core.factory import AgentFactory
from marketplace.client.installed import refresh_factory
from marketplace.client.installer import Installer, sandbox_vetter
from registry.signing import SigningKey
from sandbox.errors import AgentFailed
from tests.marketplace.fake_registry import FakeRegistry

pytestmark = pytest.mark.sandbox

# Appended to the scaffold's process.py: on request, touch the host, which only a native run can.
PROBE = '''

_counted = process


def process(task):
    if task.get("probe"):
        import os
        return {"pid": os.getpid()}
    return _counted(task)
'''


@pytest.fixture
def installed_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    registry = FakeRegistry(tmp_path / "src")
    key = SigningKey.generate()
    registry.add_key("acme", key)
    registry.publish("acme", key, "acme/words", "1.0", process_extra=PROBE)
    home = tmp_path / "home"
    Installer(registry.client(), home, vetter=sandbox_vetter()).install("acme/words")
    monkeypatch.setenv("AGENTFACTORY_HOME", str(home))
    return home


def agent_result(settings: FactorySettings) -> dict[str, object]:
    with AgentFactory(settings) as factory:
        refresh_factory(factory)
        return factory.create_agent("acme/words").process({"probe": True})


def test_high_risk_policy_runs_a_trusted_vetted_publisher_natively(installed_home: Path) -> None:
    settings = FactorySettings(sandbox_policy="high-risk", trusted_publishers=frozenset({"acme"}))
    assert agent_result(settings) == {"pid": os.getpid()}


@pytest.mark.parametrize(
    "settings",
    [
        FactorySettings(sandbox_policy="high-risk"),  # signed, vetted, but not trusted
        FactorySettings(sandbox_policy="always", trusted_publishers=frozenset({"acme"})),
    ],
    ids=["high-risk-untrusted", "always"],
)
def test_everything_else_runs_in_the_sandbox(
    installed_home: Path, settings: FactorySettings
) -> None:
    with pytest.raises(AgentFailed, match="module 'os' is not available in the sandbox"):
        agent_result(settings)


def test_trusted_publishers_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFACTORY_TRUSTED_PUBLISHERS", "acme, Globex")
    monkeypatch.setenv("AGENTFACTORY_SANDBOX_POLICY", "high-risk")
    settings = FactorySettings.from_env()
    assert settings.trusted_publishers == {"acme", "globex"}
    assert settings.sandbox_policy == "high-risk"
