"""Execute one run: resolve and pin the agent, create it, process the input, type the outcome.

This is what a worker does with a `Claim`, whatever the engine that delivered it. It never
raises for anything the agent does: every failure becomes an `Outcome` with a typed error code
(see `runs.schemas.RunErrorInfo`):

- an unknown agent is `agent_not_found`, a revoked installed one `revoked` (with the
  revocation's reason); a specifier the offered version does not meet, `version_mismatch`;
- the agent refusing its input (`AgentInputError`, or a `ValueError` from a plugin naming the
  field) is `invalid_input`;
- a sandboxed agent's failure keeps the sandbox's status as its code (`agent_error`, `timeout`,
  `out_of_fuel`, ...); a sandbox `timeout` ends the run `timed_out`;
- a native agent that raises anything else is `agent_error`, with the exception's type;
- a result that is not a JSON object (or holds NaN) is `bad_output`.

The run records the template name and exact version that ran (installed community agents are
pinned by the lockfile, so the version is the locked one), its duration, and for sandboxed agents
the fuel and memory the sandbox measured. A workflow's outcome lists its steps (`StepSummary`:
name, agent, version, status, duration; from its result, or from the failing step's trace),
which the store records as `step.finish` audit events.
"""

from __future__ import annotations

import re
from time import perf_counter
from typing import TYPE_CHECKING, Any

from core.errors import AgentFactoryError, AgentInputError, TemplateNotFound
from runs.errors import BadAgentSpec
from runs.schemas import (
    MAX_STEPS,
    Claim,
    FinalStatus,
    NotStorable,
    Outcome,
    RunErrorInfo,
    StepSummary,
    stored_json,
)

if TYPE_CHECKING:
    from core.factory import AgentFactory
    from sandbox.results import TaskResult

_SPLIT = re.compile(r"^\s*([^<>=!~\s]+)\s*(.*)$", re.DOTALL)


def split_agent(spec: str) -> tuple[str, str]:
    """`"acme/echo>=1.2,<2"` -> `("acme/echo", ">=1.2,<2")`; `BadAgentSpec` if the specifier
    is not PEP 440."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    match = _SPLIT.match(spec)
    if match is None:
        raise BadAgentSpec(spec, "expected a name, optionally followed by a version specifier")
    name, specifier = match.group(1), match.group(2).strip()
    if specifier:
        try:
            SpecifierSet(specifier)
        except InvalidSpecifier:
            raise BadAgentSpec(spec, f"{specifier!r} is not a PEP 440 specifier") from None
    return name, specifier


def version_allowed(version: str, specifier: str) -> bool:
    if not specifier:
        return True
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        return SpecifierSet(specifier).contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def installed_refusal(factory: AgentFactory, name: str) -> AgentFactoryError | None:
    """Why the factory's installed agents refuse `name` (`ReleaseRevoked`), or None."""
    from marketplace.client.installed import refusal
    from registry.errors import ReleaseRevoked

    refused = refusal(factory, name)
    return refused if isinstance(refused, ReleaseRevoked) else None


def execute(factory: AgentFactory, claim: Claim) -> Outcome:
    """The outcome of running `claim` with `factory` (never raises for the agent's doing)."""
    started = perf_counter()
    try:
        name, specifier = split_agent(claim.agent)
        agent = factory.create_agent(name)
    except TemplateNotFound as exc:
        refused = installed_refusal(factory, name)
        if refused is not None:  # e.g. a revoked release: the run is refused with its reason
            return Outcome.failure("failed", "revoked", str(refused), agent=claim.agent)
        return Outcome.failure("failed", "agent_not_found", str(exc), agent=claim.agent)
    except AgentFactoryError as exc:
        return Outcome.failure("failed", "agent_not_found", str(exc), agent=claim.agent)
    template = agent.template
    pinned: dict[str, Any] = {"version": template.version, "agent_name": template.name}
    if not version_allowed(template.version, specifier):
        error = RunErrorInfo(
            code="version_mismatch",
            message=f"{template.name} {template.version} does not match {specifier}",
            detail={"offered": template.version, "specifier": specifier},
        )
        return Outcome("failed", error=error, **pinned)
    from sandbox.errors import AgentRunError
    from sandbox.plugin import LAST_RESULT

    LAST_RESULT.set(None)
    try:
        result = agent.process(claim.input)
        _check_json(result)
    except AgentRunError as exc:
        sandboxed = exc.result
        status: FinalStatus = "timed_out" if sandboxed.status.value == "timeout" else "failed"
        detail = {"traceback": sandboxed.traceback} if sandboxed.traceback else None
        error = RunErrorInfo(code=sandboxed.status.value, message=str(exc), detail=detail)
        return Outcome(status, error=error, **pinned, **_usage(sandboxed, started))
    except (AgentInputError, ValueError) as exc:
        error = RunErrorInfo(code="invalid_input", message=f"{template.name}: {exc}")
        return Outcome("failed", error=error, **pinned, **_usage(LAST_RESULT.get(), started))
    except _BadOutput as exc:
        error = RunErrorInfo(code="bad_output", message=str(exc))
        return Outcome("failed", error=error, **pinned, **_usage(LAST_RESULT.get(), started))
    except Exception as exc:  # a native agent's own bug: reported, never fatal to the worker
        error = RunErrorInfo(
            code="agent_error", message=f"{template.name}: {type(exc).__name__}: {exc}",
            detail={"exception": type(exc).__name__},
        )
        steps = _steps(agent.implementation, getattr(exc, "trace", ()))
        return Outcome(
            "failed", error=error, **pinned, **_usage(LAST_RESULT.get(), started), steps=steps
        )
    steps = _steps(agent.implementation, result.get("steps") if isinstance(result, dict) else None)
    return Outcome(
        "succeeded", result=result, **pinned, **_usage(LAST_RESULT.get(), started), steps=steps
    )


def _steps(implementation: str | None, records: Any) -> tuple[StepSummary, ...]:
    """The step summaries of a workflow's records; none for any other agent (or bad records)."""
    if implementation != "workflow" or not isinstance(records, list | tuple):
        return ()
    try:
        return tuple(StepSummary.from_record(r) for r in records[:MAX_STEPS])
    except ValueError:
        return ()


class _BadOutput(Exception):
    pass


def _check_json(result: Any) -> None:
    try:
        stored_json(result, "the agent's result")
    except NotStorable as exc:
        raise _BadOutput(str(exc)) from None


def _usage(sandboxed: TaskResult | None, started: float) -> dict[str, Any]:
    usage: dict[str, Any] = {"duration_ms": (perf_counter() - started) * 1000}
    if sandboxed is not None:
        usage["fuel_used"] = sandboxed.fuel_used
        usage["memory_peak_bytes"] = sandboxed.memory_peak_bytes
    return usage
