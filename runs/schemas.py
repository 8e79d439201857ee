"""Typed records of the run service: what the store returns and what an execution produces.

`RunPublic` is what the API shows (the store builds it from a row; rows never leave the store).
`Outcome` is what one execution of a run produced, in the worker; it crosses the worker pipe as
JSON (`to_wire` / `from_wire`, which treats its input as untrusted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

RunStatus = Literal["queued", "running", "succeeded", "failed", "timed_out", "cancelled"]
FinalStatus = Literal["succeeded", "failed", "timed_out", "cancelled"]
FINAL: frozenset[str] = frozenset({"succeeded", "failed", "timed_out", "cancelled"})
ACTIVE: frozenset[str] = frozenset({"queued", "running"})


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


class RunErrorInfo(_Public):
    """Why a run did not succeed. `code` is stable (clients match on it): `invalid_input`,
    `agent_not_found`, `version_mismatch`, the sandbox's statuses (`agent_error`, `timeout`,
    `out_of_fuel`, `out_of_memory`, `output_too_large`, `bad_output`), `deadline`,
    `cancelled`, `worker_lost`, `internal`."""

    code: str
    message: str
    detail: dict[str, Any] | None = None


class RunUsage(_Public):
    """What the run consumed; fuel and memory are measured for sandboxed agents only."""

    duration_ms: float | None = None
    fuel_used: int | None = None
    memory_peak_bytes: int | None = None


class RunPublic(_Public):
    id: str
    status: RunStatus
    agent: str
    agent_name: str
    version: str | None
    input: dict[str, Any]
    result: dict[str, Any] | None
    error: RunErrorInfo | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    usage: RunUsage
    timeout_s: float
    idempotency_key: str | None
    attempt: int
    cancel_requested: bool

    @property
    def final(self) -> bool:
        return self.status in FINAL


class RunPage(_Public):
    items: list[RunPublic]
    total: int
    page: int
    per_page: int


class RunEventPublic(_Public):
    seq: int
    kind: str
    data: dict[str, Any]
    at: datetime


@dataclass(frozen=True)
class NewRun:
    """A run to create: the agent as requested and as resolved at submission."""

    agent: str
    agent_name: str
    version: str | None
    input: dict[str, Any]
    timeout_s: float
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Claim:
    """A run handed to one executor: `attempt` and `owner` must come back with its outcome."""

    run_id: str
    attempt: int
    owner: str
    agent: str
    agent_name: str
    input: dict[str, Any]
    timeout_s: float
    correlation_id: str | None = None  # the submitting request's (`core.context`)

    def to_wire(self) -> bytes:
        return json.dumps({
            "run_id": self.run_id, "attempt": self.attempt, "owner": self.owner,
            "agent": self.agent, "agent_name": self.agent_name, "input": self.input,
            "timeout_s": self.timeout_s, "correlation_id": self.correlation_id,
        }).encode()

    @classmethod
    def from_wire(cls, data: bytes) -> Claim:
        raw = json.loads(data)
        return cls(**raw)


STEP_FIELDS = ("name", "agent", "version", "status")
MAX_STEPS = 64
MAX_DEPTH = 64
"""How deep a run's input or result may nest (objects and arrays): deeper values are refused
before they are stored, since the JSON and pickle codecs between the service's processes give up
at a few hundred levels."""


class NotStorable(ValueError):
    """A run's input or result that cannot be stored and sent as JSON (`stored_json`)."""


def stored_json(value: Any, what: str) -> str:
    """`value` (a run's input or result, named `what` in the refusal) as the compact JSON the
    store keeps; `NotStorable` saying why if it is not JSON at all, holds a number that is not
    finite, nests deeper than `MAX_DEPTH`, or holds a string with a lone surrogate (no UTF-8
    for it)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:  # iterative: a hostile value must not exhaust the interpreter's stack
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise NotStorable(f"{what} nests deeper than {MAX_DEPTH} levels")
            children = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in children:
                if isinstance(key, str):
                    stack.append((key, depth))
                stack.append((child, depth + 1))
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise NotStorable(
                    f"{what} holds a string with a lone surrogate (not valid Unicode)"
                ) from None
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise NotStorable(f"{what}: numbers must be finite (no NaN or Infinity)") from None
    except TypeError as exc:
        raise NotStorable(f"{what} is not JSON: {exc}") from None


@dataclass(frozen=True)
class StepSummary:
    """One step of a workflow run, as its audit event records it (no input, output or error
    text: those may hold what must not be kept)."""

    name: str
    agent: str
    version: str | None
    status: str  # ok | skipped | failed
    duration_ms: float | None = None

    @classmethod
    def from_record(cls, raw: Any) -> StepSummary:
        """A step record of `plugins.workflow` (or a worker's message); `ValueError` else."""
        if not isinstance(raw, dict):
            raise ValueError("a step is not an object")
        name, agent, version, status = (raw.get(k) for k in STEP_FIELDS)
        if not (isinstance(name, str) and isinstance(agent, str) and isinstance(status, str)):
            raise ValueError("a step needs a name, an agent and a status")
        return cls(
            name[:100], agent[:200], version[:64] if isinstance(version, str) else None,
            status[:16], _opt(raw.get("duration_ms"), float),
        )


@dataclass(frozen=True)
class Outcome:
    """What one execution of a run produced (`steps`: a workflow's, for its audit events)."""

    status: FinalStatus
    result: dict[str, Any] | None = None
    error: RunErrorInfo | None = None
    version: str | None = None
    agent_name: str | None = None
    duration_ms: float | None = None
    fuel_used: int | None = None
    memory_peak_bytes: int | None = None
    steps: tuple[StepSummary, ...] = ()

    @classmethod
    def failure(cls, status: FinalStatus, code: str, message: str, **detail: Any) -> Outcome:
        return cls(status, error=RunErrorInfo(code=code, message=message, detail=detail or None))

    def to_wire(self) -> bytes:
        return json.dumps({
            "status": self.status, "result": self.result,
            "error": None if self.error is None else self.error.model_dump(),
            "version": self.version, "agent_name": self.agent_name,
            "duration_ms": self.duration_ms, "fuel_used": self.fuel_used,
            "memory_peak_bytes": self.memory_peak_bytes,
            "steps": [vars(step) for step in self.steps],
        }, allow_nan=False).encode()

    @classmethod
    def from_wire(cls, data: bytes) -> Outcome:
        """The outcome a worker sent; a `ValueError` for anything else."""
        try:
            raw = json.loads(data)
            status = raw["status"]
            if status not in FINAL:
                raise ValueError(f"status {status!r}")
            result = raw["result"]
            if result is not None and not isinstance(result, dict):
                raise ValueError("result is not an object")
            error = None if raw["error"] is None else RunErrorInfo.model_validate(raw["error"])
            return cls(
                status, result=result, error=error, version=_opt(raw["version"], str),
                agent_name=_opt(raw["agent_name"], str),
                duration_ms=_opt(raw["duration_ms"], float),
                fuel_used=_opt(raw["fuel_used"], int),
                memory_peak_bytes=_opt(raw["memory_peak_bytes"], int),
                steps=tuple(
                    StepSummary.from_record(step) for step in raw.get("steps", [])[:MAX_STEPS]
                ),
            )
        except (KeyError, TypeError, RecursionError) as exc:
            raise ValueError(f"not a run outcome: {exc}") from None


def _opt(value: Any, kind: type) -> Any:
    if value is None:
        return None
    if kind is float and type(value) is int:
        return float(value)
    if type(value) is not kind:
        raise ValueError(f"{value!r} is not a {kind.__name__}"[:80])
    return value
