"""The `genie_logiciel` built-in agent: static analysis of Python source with `ast`.

The work is done by `plugins.logic.genie_logiciel`, a stdlib-only file that is also published as
the agent package's `process.py` and runs unchanged in the sandbox; this module only binds it to the
plugin hooks. The source is parsed, never executed.

Task: `{"source": str, "max_complexity"?: int}` (`"text"` is accepted for `"source"`, which is what
`agentfactory run genie_logiciel --input file.py` sends). `max_complexity` defaults to the agent's
config, then the template's parameters, then 10.
"""

from __future__ import annotations

from plugins.logic.genie_logiciel import (
    Analysis,
    ClassInfo,
    FunctionInfo,
    ImportInfo,
    Issue,
    analyze,
    complexity,
    process,
)
from plugins.native import NativeAgent

__all__ = [
    "NAME",
    "Analysis",
    "ClassInfo",
    "FunctionInfo",
    "ImportInfo",
    "Issue",
    "analyze",
    "complexity",
    "plugin",
]

NAME = "genie_logiciel"
# Task fields that fall back to the agent's settings when the task leaves them out.
OPTIONS = ("max_complexity",)

plugin = NativeAgent(NAME, process, OPTIONS)
