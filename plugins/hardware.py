"""The `hardware` built-in agent: parse a hardware spec sheet and check it against requirements.

The work is done by `plugins.logic.hardware`, a stdlib-only file that is also published as the
agent package's `process.py` and runs unchanged in the sandbox; this module only binds it to the
plugin hooks. Unit conventions (RAM in GiB, drives in decimal TB) are documented there.

Task: `{"text": str, "requirements"?: {"min_ram_gb": ..., "min_cores": ..., "min_disk_tb": ...}}`.
When the task has no `requirements`, those of the agent's config or template parameters apply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy import lazy_getattr
from plugins.native import NativeAgent

if TYPE_CHECKING:
    from plugins.logic.hardware import (
        REQUIREMENTS,
        Check,
        Component,
        HardwareReport,
        analyze,
        size_to_bytes,
    )

__all__ = [
    "NAME",
    "REQUIREMENTS",
    "Check",
    "Component",
    "HardwareReport",
    "analyze",
    "plugin",
    "size_to_bytes",
]

NAME = "hardware"
# Task fields that fall back to the agent's settings when the task leaves them out.
OPTIONS = ("requirements",)

LOGIC = "plugins.logic.hardware"

plugin = NativeAgent(NAME, LOGIC, OPTIONS)

# Every other public name is the logic module's, imported on first use (see `plugins.native`).
__getattr__ = lazy_getattr(__name__, dict.fromkeys(set(__all__) - {"NAME", "plugin"}, LOGIC))
