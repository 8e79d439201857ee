"""The tool deny-list.

A template asking for a tool on `DENIED_TOOLS` is refused by the built-in validator plugin
(`plugins.security_validator`) unless the operator lists the tool in
`FactorySettings.allowed_tools`. Tool names are compared case-insensitively, and a qualified name
belongs to its family: `shell:bash` and `filesystem.write` are denied like `shell` and
`filesystem`, and allowing the family allows its members.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

DENIED_TOOLS: frozenset[str] = frozenset(
    {
        # running arbitrary commands
        "shell",
        "bash",
        "exec",
        "subprocess",
        "terminal",
        "python_exec",
        # unrestricted network access
        "network",
        "http",
        "socket",
        "web_request",
        # unrestricted filesystem access
        "filesystem",
        "file_write",
        "file_delete",
    }
)

_FAMILY_SEPARATOR = re.compile(r"[:./]")


def _family(tool: str) -> str:
    return _FAMILY_SEPARATOR.split(tool.strip().lower(), maxsplit=1)[0]


def denied_tools(tools: Iterable[str], allowed: Iterable[str] = ()) -> list[str]:
    """The tools of `tools` that are denied and not allowed, in order, without duplicates."""
    allowed_set = {a.strip().lower() for a in allowed}
    refused: list[str] = []
    for tool in tools:
        normalized = tool.strip().lower()
        family = _family(tool)
        if family not in DENIED_TOOLS and normalized not in DENIED_TOOLS:
            continue
        if normalized in allowed_set or family in allowed_set:
            continue
        if tool not in refused:
            refused.append(tool)
    return refused
