"""The `base_agent` implementation: a generic, deterministic processor.

It echoes the task's text normalized (Unicode NFC, line endings unified, trailing spaces and runs
of blank lines removed) with simple statistics, so a template that only sets prompts and
parameters is usable end to end without writing code. Registered through the `agentfactory`
entry-point group like every other plugin.

Task: `{"text": str}`; any other task is rendered as canonical JSON text first.
Parameters (template `parameters`, overridable by the agent config): `max_chars` (int, default
10000) caps the echoed text; `lowercase` (bool, default false).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from core.errors import AgentInputError
from core.hookspecs import hookimpl

if TYPE_CHECKING:
    from core.agent import Agent

NAME = "base_agent"
_BLANK_RUN = re.compile(r"\n{3,}")
_WORD = re.compile(r"\w+", re.UNICODE)


@hookimpl
def agentfactory_implementations() -> Sequence[str]:
    return [NAME]


def normalize(text: str) -> str:
    """NFC, `\\n` line endings, no trailing spaces, at most one blank line in a row, stripped."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_RUN.sub("\n\n", text).strip()


def process(
    task: dict[str, Any], *, max_chars: int = 10_000, lowercase: bool = False
) -> dict[str, Any]:
    """The base agent's work on one task (pure function, usable without a factory)."""
    raw = task.get("text")
    if raw is None:
        raw = json.dumps(task, sort_keys=True, ensure_ascii=False, indent=2)
    if not isinstance(raw, str):
        raise AgentInputError(f"task field 'text' must be a string, not {type(raw).__name__}")
    if not isinstance(max_chars, int) or isinstance(max_chars, bool) or max_chars < 1:
        raise AgentInputError(f"parameter 'max_chars' must be a positive integer: {max_chars!r}")
    text = normalize(raw)
    if lowercase:
        text = text.lower()
    lines = text.split("\n") if text else []
    words = _WORD.findall(text)
    return {
        "text": text[:max_chars],
        "truncated": len(text) > max_chars,
        "stats": {
            "chars": len(text),
            "words": len(words),
            "lines": len(lines),
            "blank_lines": sum(1 for line in lines if not line),
            "unique_words": len({w.lower() for w in words}),
        },
        "fields": sorted(task),
    }


@hookimpl
def agentfactory_process(agent: Agent, task: dict[str, Any]) -> dict[str, Any] | None:
    if agent.implementation != NAME:
        return None
    result = process(
        task,
        max_chars=agent.setting("max_chars", 10_000),
        lowercase=bool(agent.setting("lowercase", False)),
    )
    return {"agent": agent.template.name, "version": agent.template.version, **result}
