"""The `security_analyst` built-in agent: find secrets and personal data, return masked text.

The work is done by `plugins.logic.security_analyst`, a stdlib-only file that is also published as
the agent package's `process.py` and runs unchanged in the sandbox; this module only binds it to
the plugin hooks. The masked text never contains a detected secret.

Task: `{"text": str, "phones"?: bool, "severity_threshold"?: str, "max_findings"?: int}`; each
option the task leaves out comes from the agent's config, then the template's parameters
(`phones`, phone-number detection, is off by default because it is noisy).
"""

from __future__ import annotations

from plugins.logic.security_analyst import (
    Finding,
    ScanResult,
    iban_valid,
    luhn_valid,
    process,
    scan,
)
from plugins.native import NativeAgent

__all__ = ["NAME", "Finding", "ScanResult", "iban_valid", "luhn_valid", "plugin", "scan"]

NAME = "security_analyst"
# Task fields that fall back to the agent's settings when the task leaves them out.
OPTIONS = ("phones", "severity_threshold", "max_findings")

plugin = NativeAgent(NAME, process, OPTIONS)
