"""Settings of one `AgentFactory`.

A plain dataclass of limits and choices, validated when built: an impossible value raises
`SettingsError` naming the field, so a bad operator configuration fails at start-up rather than at
the first agent. `FactorySettings.from_env()` is what the CLI uses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from core.errors import SettingsError

SandboxPolicy = Literal["always", "high-risk", "never"]

ENV_TEMPLATE_PATH = "AGENTFACTORY_TEMPLATE_PATH"
ENV_ALLOWED_TOOLS = "AGENTFACTORY_ALLOWED_TOOLS"


@dataclass
class FactorySettings:
    """What an operator configures. Later `template_dirs` override earlier ones and built-ins."""

    template_dirs: list[Path] = field(default_factory=list)
    cache_size: int = 256
    cache_ttl_s: float = 300.0
    preload: list[str] = field(default_factory=list)
    hot_reload: bool = False
    allowed_tools: frozenset[str] = frozenset()
    sandbox_policy: SandboxPolicy = "always"

    def __post_init__(self) -> None:
        self.template_dirs = [Path(p).expanduser() for p in self.template_dirs]
        self.allowed_tools = frozenset(t.strip().lower() for t in self.allowed_tools)
        if self.cache_size < 1:
            raise SettingsError("cache_size", self.cache_size, "must be at least 1")
        if not self.cache_ttl_s > 0:
            raise SettingsError("cache_ttl_s", self.cache_ttl_s, "must be a positive number")
        if self.sandbox_policy not in get_args(SandboxPolicy):
            raise SettingsError(
                "sandbox_policy", self.sandbox_policy, f"must be one of {get_args(SandboxPolicy)}"
            )

    @classmethod
    def from_env(cls) -> FactorySettings:
        """Settings from the environment: `AGENTFACTORY_TEMPLATE_PATH` (os.pathsep-separated
        directories) and `AGENTFACTORY_ALLOWED_TOOLS` (comma-separated tool names)."""
        dirs = [Path(p) for p in os.environ.get(ENV_TEMPLATE_PATH, "").split(os.pathsep) if p]
        tools = {t for t in os.environ.get(ENV_ALLOWED_TOOLS, "").split(",") if t.strip()}
        return cls(template_dirs=dirs, allowed_tools=frozenset(tools))
