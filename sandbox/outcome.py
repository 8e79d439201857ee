"""Reading what the guest says, as hostile input: size, then depth, then JSON.

The agent shares the guest interpreter with the runner and can tamper with it (replace
`json.dumps`, raise from `__str__`, ...), so the runner's outcome text is checked like any input
from a stranger. Invariants, in the order they are applied:

1. Size: an outcome longer than `outcome_cap(max_output)` characters is `output_too_large`,
   decided on the raw string before any parsing.
2. Depth: a non-recursive scan of the raw text refuses nesting deeper than `MAX_DEPTH` (the
   result value) as `bad_output`, so neither `json.loads` nor any host code that later walks the
   value (comparisons with expected output, `repr`, `json.dumps`) recurses deeply.
3. JSON: parsed with NaN, Infinity and non-finite numbers refused; a value holding a lone
   surrogate (text no UTF-8 encoder accepts) is `bad_output`; the informative text fields
   (error, traceback, stdout) are cut to size and their lone surrogates replaced.

`finish(step, limits)` never raises: whatever the text, the answer is one `TaskResult`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from sandbox.engine import GuestOutcome, Step
from sandbox.results import TaskResult, TaskStatus

MAX_DEPTH = 100
"""Deepest nesting of arrays and objects accepted in a result value (Python's own recursion
limit is 1000; host code walking the value stays far below it)."""
TRACEBACK_CAP = 16_000
ERROR_CAP = 2_000

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class OutcomeError(ValueError):
    """The outcome text cannot be accepted; `status` says how to report it."""

    def __init__(self, status: TaskStatus, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


def outcome_cap(max_output: int) -> int:
    """The longest outcome text accepted: the result value (itself capped at `max_output` by the
    runner), printed text after JSON escaping (up to 6 characters each), and a traceback."""
    return 7 * max_output + TRACEBACK_CAP + ERROR_CAP + 4096


def nesting_depth(text: str, limit: int) -> int:
    """Deepest nesting of `[`/`{` in JSON `text` outside strings, without recursion; stops
    counting as soon as `limit` is passed (so the answer is then `limit + 1`)."""
    if text.count("[") + text.count("{") <= limit:
        return 0  # cannot nest deeper than it has openers: the common case costs two counts
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        else:
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def read_json(text: str, *, max_chars: int, max_depth: int) -> Any:
    """Parse untrusted JSON text under the size and depth limits; `OutcomeError` otherwise."""
    if len(text) > max_chars:
        raise OutcomeError(TaskStatus.OUTPUT_TOO_LARGE, f"outcome is {len(text)} characters")
    if nesting_depth(text, max_depth) > max_depth:
        raise OutcomeError(TaskStatus.BAD_OUTPUT, f"result is nested deeper than {max_depth - 1}")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
    except (ValueError, RecursionError) as exc:  # RecursionError: belt and braces
        raise OutcomeError(TaskStatus.BAD_OUTPUT, f"unreadable outcome: {exc}") from None


def lone_surrogate(value: Any) -> bool:
    """Whether a string anywhere in `value` (keys included) holds a lone surrogate. Iterative."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _text(value: Any, cap: int, *, tail: bool = False) -> str:
    if not isinstance(value, str):
        return ""
    value = value[-cap:] if tail else value[:cap]
    if _SURROGATE.search(value):
        value = value.encode("utf-8", "replace").decode("utf-8")
    return str(value)


def parse_outcome(text: str, fuel_used: int, duration_ms: float, max_output: int) -> TaskResult:
    """The runner's outcome text as a TaskResult; any malformed text is a typed failure."""

    def failed(status: TaskStatus, reason: str) -> TaskResult:
        return TaskResult(status, error=reason, fuel_used=fuel_used, duration_ms=duration_ms)

    try:
        outcome = read_json(text, max_chars=outcome_cap(max_output), max_depth=MAX_DEPTH + 1)
        if not isinstance(outcome, dict):
            raise OutcomeError(TaskStatus.BAD_OUTPUT, "outcome is not an object")
        status = TaskStatus(str(outcome.get("status")))
    except OutcomeError as exc:
        return failed(exc.status, exc.reason)
    except ValueError:
        return failed(TaskStatus.BAD_OUTPUT, "outcome has no known status")
    value = outcome.get("value") if status is TaskStatus.OK else None
    if value is not None and _SURROGATE_ESCAPE.search(text) and lone_surrogate(value):
        return failed(TaskStatus.BAD_OUTPUT, "result holds a lone surrogate (invalid Unicode text)")
    peak = outcome.get("memory_peak")
    return TaskResult(
        status,
        value=value,
        error=_text(outcome.get("error"), ERROR_CAP),
        traceback=_text(outcome.get("traceback"), TRACEBACK_CAP, tail=True),
        stdout=_text(outcome.get("stdout"), max_output),
        memory_peak_bytes=peak if type(peak) is int and peak > 0 else None,
        fuel_used=fuel_used,
        duration_ms=duration_ms,
    )


def finish(step: Step, max_output: int) -> TaskResult:
    """A TaskResult for one engine step: host-made results pass, guest text is parsed."""
    if isinstance(step, GuestOutcome):
        return parse_outcome(step.text, step.fuel_used, step.duration_ms, max_output)
    return step
