"""Sandboxed community agents through the real factory, under each operator policy."""

from __future__ import annotations

import pytest

from core.factory import AgentFactory
from core.plugins import make_plugin_manager
from sandbox import Sandbox
from sandbox.errors import AgentBadOutput, AgentFailed, AgentOutOfFuel
from sandbox.limits import SandboxLimits
from sandbox.plugin import SandboxedAgentPlugin
from sandbox.policy import SandboxPolicy, assess, must_sandbox
from sandbox.vetting import vet
from tests.sandbox.factories import make_package

pytestmark = pytest.mark.sandbox

# `os` works natively but is refused in the sandbox: the result tells where the code ran.
WHERE = (
    "def process(task):\n"
    "    try:\n"
    "        import os\n"
    "        return {'where': 'native'}\n"
    "    except ImportError:\n"
    "        return {'where': 'sandbox'}\n"
)


def factory_with(plugin: SandboxedAgentPlugin) -> AgentFactory:
    factory = AgentFactory(
        plugin_manager=make_plugin_manager(load_entry_points=False),
        include_builtin_templates=False,
    )
    factory.register_plugin(plugin, name=plugin.name)
    return factory


def test_vetted_package_runs_in_the_sandbox_transparently(sandbox: Sandbox) -> None:
    package = make_package()
    plugin = SandboxedAgentPlugin(package, sandbox, "always", vet(package, sandbox))
    with factory_with(plugin) as factory:
        agent = factory.create_agent("acme/doubler")
        assert agent.implementation == "acme/doubler"
        assert agent.process({"n": 21}) == {"double": 42, "label": "n=21"}
    assert plugin.sandboxed


def test_sandbox_failures_surface_as_typed_errors(sandbox: Sandbox) -> None:
    source = (
        "def process(task):\n    if task.get('spin'):\n        while True:\n            pass\n"
        "    if task.get('list'):\n        return [1]\n    raise ValueError('nope')\n"
    )
    plugin = SandboxedAgentPlugin(make_package(source), sandbox, limits=SandboxLimits(fuel=10**7))
    with factory_with(plugin) as factory:
        agent = factory.create_agent("acme/doubler")
        with pytest.raises(AgentFailed, match="ValueError: nope"):
            agent.process({})
        with pytest.raises(AgentOutOfFuel):
            agent.process({"spin": True})
        with pytest.raises(AgentBadOutput, match="not an object"):
            agent.process({"list": True})


def test_policy_never_runs_natively(sandbox: Sandbox) -> None:
    plugin = SandboxedAgentPlugin(make_package(WHERE), sandbox, SandboxPolicy.NEVER)
    with factory_with(plugin) as factory:
        assert factory.create_agent("acme/doubler").process({}) == {"where": "native"}


def test_policy_high_risk_sandboxes_only_risky_packages(sandbox: Sandbox) -> None:
    package = make_package(WHERE, examples=[{"name": "any", "input": {},
                                             "checks": [{"path": "where", "op": "exists"}]}])
    report = vet(package, sandbox)
    trusted = SandboxedAgentPlugin(package, sandbox, "high-risk", report, publisher_verified=True)
    assert not trusted.risk.high_risk
    with factory_with(trusted) as factory:
        assert factory.create_agent("acme/doubler").process({}) == {"where": "native"}
    unverified = SandboxedAgentPlugin(package, sandbox, "high-risk", report)
    assert unverified.risk.reasons == ("publisher unknown or unverified",)
    with factory_with(unverified) as factory:
        assert factory.create_agent("acme/doubler").process({}) == {"where": "sandbox"}


def test_risk_reasons_cover_tools_and_vetting(sandbox: Sandbox) -> None:
    package = make_package(tools=["shell", "text_reader"], examples=[])
    risk = assess(package, vet(package, sandbox), publisher_verified=True)
    assert risk.reasons == ("asks for denied tools: shell", "vetting unvetted")
    allowed = assess(package, None, publisher_verified=True, allowed_tools={"shell"})
    assert allowed.reasons == ("not vetted",)
    assert must_sandbox("always", assess(make_package(), None, publisher_verified=True))
    assert not must_sandbox("never", risk)
