"""The `documentaliste` built-in agent: index and summarize a text (English or French).

The work is done by `plugins.logic.documentaliste`, a stdlib-only file that is also published as
the agent package's `process.py` and runs unchanged in the sandbox; this module only binds it to the
plugin hooks, so a native run and a sandboxed run give the same result.

Task: `{"text": str, "max_sentences"?: int, "max_keywords"?: int}`. The two options default to
the agent's config, then the template's parameters, then 3 and 10.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy import lazy_getattr
from plugins.native import NativeAgent

if TYPE_CHECKING:
    from plugins.logic.documentaliste import Heading, Keyword, Summary, summarize

__all__ = ["NAME", "Heading", "Keyword", "Summary", "plugin", "summarize"]

NAME = "documentaliste"
# Task fields that fall back to the agent's settings when the task leaves them out.
OPTIONS = ("max_sentences", "max_keywords")

LOGIC = "plugins.logic.documentaliste"

plugin = NativeAgent(NAME, LOGIC, OPTIONS)

# Every other public name is the logic module's, imported on first use (see `plugins.native`).
__getattr__ = lazy_getattr(__name__, dict.fromkeys(set(__all__) - {"NAME", "plugin"}, LOGIC))
