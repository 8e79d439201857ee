"""The DLP filter: the `security_analyst` detectors applied to what leaves and what comes back.

`detect(text)` is the only place that reaches the detectors (`plugins.logic.security_analyst`,
the stdlib-only file the built-in agent ships), imported on first use. `apply(policy, text,
direction)` returns the text to use: unchanged under `off` or when nothing is found, masked
(each finding replaced by its masked form) under `mask`; under `refuse` a finding raises
`DlpRefused` naming the kinds. Kinds are reported, values never.

The policy of a call is the stricter of the deployment's and the template's (`off` < `mask` <
`refuse`): a template can ask for more care than the deployment, never for less.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.errors import DlpRefused
from models.types import DLP_POLICIES, DlpPolicy


@dataclass(frozen=True, slots=True)
class Detection:
    masked_text: str
    kinds: tuple[str, ...]  # sorted, each once


def detect(text: str) -> Detection:
    """What the detectors find in `text` (phone numbers excluded: too noisy for a filter)."""
    from plugins.logic.security_analyst import scan

    result = scan(text)
    return Detection(result.masked_text, tuple(sorted({f.kind for f in result.findings})))


def strictest(*policies: DlpPolicy | None) -> DlpPolicy:
    """The strictest of `policies` (None counts as `off`)."""
    return max((p or "off" for p in policies), key=DLP_POLICIES.index)


def apply(policy: DlpPolicy, text: str, direction: str) -> Detection:
    """`text` filtered under `policy`; `DlpRefused` when `refuse` finds anything."""
    if policy == "off" or not text:
        return Detection(text, ())
    found = detect(text)
    if found.kinds and policy == "refuse":
        raise DlpRefused(direction, found.kinds)
    return found
