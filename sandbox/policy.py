"""The operator's sandbox policy and what makes a package high-risk.

Policies: `always` (every community agent runs in the sandbox; the default), `high-risk` (only
packages with at least one risk reason), `never` (community agents run natively; the operator
accepts the risk). Built-in plugins never go through here: they run natively.

A package is high-risk when any of these holds, and every one that holds is reported: its
publisher is unknown or unverified; its templates or permissions ask for a tool on
`core.security.DENIED_TOOLS` that the operator did not allow; its vetting failed or is missing
(no report, or unvetted because it has no examples).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.security import denied_tools
from sandbox.errors import SandboxError

if TYPE_CHECKING:
    from registry.archive import Package
    from sandbox.vetting import VettingReport


class SandboxPolicy(enum.StrEnum):
    ALWAYS = "always"
    HIGH_RISK = "high-risk"
    NEVER = "never"

    @classmethod
    def parse(cls, value: str | SandboxPolicy) -> SandboxPolicy:
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(p.value for p in cls)
            raise SandboxError(f"unknown sandbox policy {value!r} (one of {choices})") from None


@dataclass(frozen=True)
class RiskAssessment:
    reasons: tuple[str, ...]

    @property
    def high_risk(self) -> bool:
        return bool(self.reasons)


def requested_tools(package: Package) -> list[str]:
    """Every tool the package's templates and manifest permissions ask for, in order."""
    tools: list[str] = []
    for template in package.templates:
        tools.extend(t for t in template.tools if t not in tools)
    tools.extend(p for p in package.manifest.permissions if p not in tools)
    return tools


def assess(
    package: Package,
    report: VettingReport | None,
    *,
    publisher_verified: bool = False,
    allowed_tools: Iterable[str] = (),
) -> RiskAssessment:
    reasons = []
    if not publisher_verified:
        reasons.append("publisher unknown or unverified")
    denied = denied_tools(requested_tools(package), allowed_tools)
    if denied:
        reasons.append(f"asks for denied tools: {', '.join(denied)}")
    if report is None:
        reasons.append("not vetted")
    elif report.digest and report.digest != package.digest:
        reasons.append("vetting report is for other bytes")
    elif not report.passed:
        reasons.append(f"vetting {report.status.value}")
    return RiskAssessment(tuple(reasons))


def must_sandbox(policy: str | SandboxPolicy, risk: RiskAssessment) -> bool:
    """Whether a community package runs in the sandbox under `policy`."""
    chosen = SandboxPolicy.parse(policy)
    if chosen is SandboxPolicy.ALWAYS:
        return True
    if chosen is SandboxPolicy.NEVER:
        return False
    return risk.high_risk
