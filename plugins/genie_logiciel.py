"""The `genie_logiciel` built-in agent: static analysis of Python source with `ast`.

The work is done by `plugins.logic.genie_logiciel`, a stdlib-only file that is also published as
the agent package's `process.py` and runs unchanged in the sandbox; this module only binds it to the
plugin hooks. The source is parsed, never executed.

Task: `{"source": str, "max_complexity"?: int}` (`"text"` is accepted for `"source"`, which is what
`agentfactory run genie_logiciel --input file.py` sends). `max_complexity` defaults to the agent's
config, then the template's parameters, then 10.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy import lazy_getattr
from plugins.native import NativeAgent

if TYPE_CHECKING:
    from plugins.logic.genie_logiciel import (
        Analysis,
        ClassInfo,
        FunctionInfo,
        ImportInfo,
        Issue,
        analyze,
        complexity,
    )

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

LOGIC = "plugins.logic.genie_logiciel"

plugin = NativeAgent(NAME, LOGIC, OPTIONS)

# Every other public name is the logic module's, imported on first use (see `plugins.native`).
__getattr__ = lazy_getattr(__name__, dict.fromkeys(set(__all__) - {"NAME", "plugin"}, LOGIC))
