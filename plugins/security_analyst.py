"""The `security_analyst` built-in agent: find secrets and personal data, return masked text.

The work is done by `plugins.logic.security_analyst`, a stdlib-only file that is also published as
the agent package's `process.py` and runs unchanged in the sandbox; this module only binds it to
the plugin hooks. The masked text never contains a detected secret.

Task: `{"text": str, "phones"?: bool, "severity_threshold"?: str, "max_findings"?: int}`; each
option the task leaves out comes from the agent's config, then the template's parameters
(`phones`, phone-number detection, is off by default because it is noisy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy import lazy_getattr
from plugins.native import NativeAgent

if TYPE_CHECKING:
    from plugins.logic.security_analyst import (
        Finding,
        ScanResult,
        iban_valid,
        luhn_valid,
        scan,
    )

__all__ = ["NAME", "Finding", "ScanResult", "iban_valid", "luhn_valid", "plugin", "scan"]

NAME = "security_analyst"
# Task fields that fall back to the agent's settings when the task leaves them out.
OPTIONS = ("phones", "severity_threshold", "max_findings")

LOGIC = "plugins.logic.security_analyst"

plugin = NativeAgent(NAME, LOGIC, OPTIONS)

# Every other public name is the logic module's, imported on first use (see `plugins.native`).
__getattr__ = lazy_getattr(__name__, dict.fromkeys(set(__all__) - {"NAME", "plugin"}, LOGIC))
