"""Agent Factory core: templates, the template manager, plugins, agents and the factory.

Public names are re-exported lazily (PEP 562) so that importing a light submodule such as
`core.errors` — which the CLI does before every command — does not pull in pydantic and watchdog.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy import lazy_getattr

if TYPE_CHECKING:
    from core.agent import Agent
    from core.config import FactorySettings
    from core.factory import AgentFactory, FactoryStats
    from core.hookspecs import hookimpl
    from core.loader import load_template_file, parse_template
    from core.manager import ManagerMetrics, ReloadEvent, TemplateManager
    from core.plugins import make_plugin_manager
    from core.resolved import ResolvedTemplate
    from core.security import DENIED_TOOLS, denied_tools
    from core.template import AgentTemplate, ModelSettings

_EXPORTS = {
    "Agent": "core.agent",
    "AgentFactory": "core.factory",
    "AgentTemplate": "core.template",
    "DENIED_TOOLS": "core.security",
    "FactorySettings": "core.config",
    "FactoryStats": "core.factory",
    "ManagerMetrics": "core.manager",
    "ModelSettings": "core.template",
    "ReloadEvent": "core.manager",
    "ResolvedTemplate": "core.resolved",
    "TemplateManager": "core.manager",
    "denied_tools": "core.security",
    "hookimpl": "core.hookspecs",
    "load_template_file": "core.loader",
    "make_plugin_manager": "core.plugins",
    "parse_template": "core.loader",
}

__all__ = [
    "DENIED_TOOLS",
    "Agent",
    "AgentFactory",
    "AgentTemplate",
    "FactorySettings",
    "FactoryStats",
    "ManagerMetrics",
    "ModelSettings",
    "ReloadEvent",
    "ResolvedTemplate",
    "TemplateManager",
    "denied_tools",
    "hookimpl",
    "load_template_file",
    "make_plugin_manager",
    "parse_template",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS)
