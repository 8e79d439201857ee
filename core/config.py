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
ENV_SANDBOX_POLICY = "AGENTFACTORY_SANDBOX_POLICY"
ENV_TRUSTED_PUBLISHERS = "AGENTFACTORY_TRUSTED_PUBLISHERS"


def _names(value: str) -> frozenset[str]:
    return frozenset(n.strip() for n in value.split(",") if n.strip())


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
    # Namespaces whose packages count as from a verified publisher under the "high-risk" policy
    # (a valid signature proves who published, not that they deserve trust: the operator says so).
    trusted_publishers: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.template_dirs = [Path(p).expanduser() for p in self.template_dirs]
        self.allowed_tools = frozenset(t.strip().lower() for t in self.allowed_tools)
        self.trusted_publishers = frozenset(n.strip().lower() for n in self.trusted_publishers)
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
        directories), `AGENTFACTORY_ALLOWED_TOOLS` (comma-separated tool names),
        `AGENTFACTORY_SANDBOX_POLICY` (always, high-risk or never) and
        `AGENTFACTORY_TRUSTED_PUBLISHERS` (comma-separated namespaces)."""
        env = os.environ
        dirs = [Path(p) for p in env.get(ENV_TEMPLATE_PATH, "").split(os.pathsep) if p]
        policy = env.get(ENV_SANDBOX_POLICY, "always")
        return cls(
            template_dirs=dirs,
            allowed_tools=_names(env.get(ENV_ALLOWED_TOOLS, "")),
            sandbox_policy=policy,  # type: ignore[arg-type]  # checked in __post_init__
            trusted_publishers=_names(env.get(ENV_TRUSTED_PUBLISHERS, "")),
        )
