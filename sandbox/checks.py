"""Evaluate a package example's `expected` value and `checks` against an agent's output.

Invariants: evaluation never raises on any JSON output, and nothing here recurses over it (equality
is iterative, shown values are cut to three levels); each failed expectation yields one
human-readable line naming the path, the operation and what was found. An `expected` mismatch
names the first differing field's path and both values there (JSON, three levels deep), each cut
(with an ellipsis) only past 80 characters. `expected` is exact JSON equality (`1` equals `1.0`,
but `True` is not `1`); a check whose path is missing fails, except `exists` with value false.

Nothing an upload supplies can make the host work for long (the host runs this, not the guest):

- `matches` patterns are RE2 (`google-re2`), which matches in time linear in the subject: no
  pattern backtracks (`(a+)+$` on `aaa…b` costs what a plain scan costs). RE2 has no
  backreferences or lookaround; `pattern_problem` says so, and the marketplace refuses such a
  pattern at publish. A pattern is at most `MAX_PATTERN_CHARS` characters and is matched against
  at most `MAX_SUBJECT_CHARS` characters of output (a longer subject fails the check).
- Every comparison of one example's output (`expected` and all its checks) visits at most
  `MAX_COMPARE_STEPS` JSON values; past that the example fails with "too large to compare".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, Protocol

import re2

_MISSING = object()
MAX_PATTERN_CHARS = 1_000
MAX_SUBJECT_CHARS = 64 * 1024
MAX_COMPARE_STEPS = 1_000_000
# A list index longer than this is no index of any output the sandbox lets through (and `int()`
# refuses strings past 4,300 digits).
_MAX_INDEX_DIGITS = 18
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
}


class TooLargeToCompare(Exception):
    """The comparisons of one example visited more values than their `StepBudget` allows."""


class StepBudget:
    """How many more JSON values the comparisons of one example may visit."""

    def __init__(self, steps: int = MAX_COMPARE_STEPS) -> None:
        self.steps = steps
        self.left = steps

    def spend(self, count: int = 1) -> None:
        self.left -= count
        if self.left < 0:
            raise TooLargeToCompare(self.steps)


class Pattern(Protocol):
    """What the host uses of a compiled RE2 pattern."""

    def search(self, text: str) -> object | None: ...


class CheckLike(Protocol):
    """What `registry.manifest.Check` offers (read-only, so its Literal `op` fits)."""

    @property
    def path(self) -> str: ...
    @property
    def op(self) -> str: ...
    @property
    def value(self) -> Any: ...


def resolve(output: Any, path: str) -> Any:
    """The value at dotted `path` (`items.0.name`; empty = all), or `_MISSING`."""
    current = output
    for part in path.split(".") if path else ():
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and _is_index(part):
            index = int(part)
            if not -len(current) <= index < len(current):
                return _MISSING
            current = current[index]
        else:
            return _MISSING
    return current


def _is_index(part: str) -> bool:
    digits = part.removeprefix("-")
    return digits.isascii() and digits.isdigit() and len(digits) <= _MAX_INDEX_DIGITS


def json_equal(left: Any, right: Any, budget: StepBudget | None = None) -> bool:
    """Equality as JSON sees it: booleans are not numbers, lists compare in order. Iterative, so
    no nesting depth (guest output or a manifest's `expected`) can exhaust the stack; each pair
    of values visited spends one step of `budget` (`TooLargeToCompare` when it runs out)."""
    pending = [(left, right)]
    while pending:
        a, b = pending.pop()
        if budget is not None:
            budget.spend()
        if isinstance(a, bool) or isinstance(b, bool):
            if not (isinstance(a, bool) and isinstance(b, bool) and a == b):
                return False
        elif isinstance(a, dict) and isinstance(b, dict):
            if a.keys() != b.keys():
                return False
            if budget is not None:
                budget.spend(len(a))
            pending.extend((a[key], b[key]) for key in a)
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                return False
            if budget is not None:
                budget.spend(len(a))
            pending.extend(zip(a, b, strict=True))
        elif isinstance(a, int | float) and isinstance(b, int | float):
            if a != b:
                return False
        elif not (type(a) is type(b) and bool(a == b)):
            return False
    return True


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _contains(found: Any, value: Any, budget: StepBudget | None) -> bool:
    if isinstance(found, str):
        return isinstance(value, str) and value in found  # two-way search: linear
    if isinstance(found, list):
        return any(json_equal(item, value, budget) for item in found)
    if isinstance(found, dict):
        return isinstance(value, str) and value in found
    return False


SHOWN_CHARS = 80
SHOWN_LEVELS = 3


def _preview(value: Any, levels: int, budget: int) -> str:
    """JSON text of `value`, containers below `levels` shown as `[…]`/`{…}`, stopping soon after
    `budget` characters (the caller cuts). Recursion is bounded by `levels`, not by the value."""
    if isinstance(value, dict | list):
        if not value:
            return "{}" if isinstance(value, dict) else "[]"
        if levels == 0:
            return "{…}" if isinstance(value, dict) else "[…]"
        items = value.items() if isinstance(value, dict) else ((None, item) for item in value)
        parts: list[str] = []
        used = 0
        for key, item in items:
            if used > budget:
                parts.append("…")
                break
            head = "" if key is None else f"{json.dumps(str(key), ensure_ascii=False)}: "
            parts.append(head + _preview(item, levels - 1, budget - used))
            used += len(parts[-1]) + 2
        inner = ", ".join(parts)
        return f"{{{inner}}}" if isinstance(value, dict) else f"[{inner}]"
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _short(value: Any) -> str:
    """`value` as JSON (what the package author wrote), three levels deep, cut with an ellipsis
    past 80 characters."""
    text = _preview(value, SHOWN_LEVELS, SHOWN_CHARS)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def first_difference(
    expected: Any, found: Any, budget: StepBudget | None = None
) -> tuple[str, Any, Any] | None:
    """Where `found` first differs from `expected` (JSON equality), as `(path, wanted, got)`.

    The path is dotted like a check's (`items.0.name`, empty for the whole output). Keys are
    visited in `expected`'s order, then keys only `found` has; a value missing on one side is
    `_MISSING` on that side. None when the two are equal. Iterative (depth-first with an
    explicit stack), like `json_equal`, and spends `budget` like it.
    """
    pending: list[tuple[str, Any, Any]] = [("", expected, found)]
    while pending:
        path, wanted, got = pending.pop()
        if budget is not None:
            budget.spend()
        prefix = f"{path}." if path else ""
        if isinstance(wanted, dict) and isinstance(got, dict):
            keys = [*wanted, *(k for k in got if k not in wanted)]
            pending.extend((f"{prefix}{key}", wanted.get(key, _MISSING), got.get(key, _MISSING))
                           for key in reversed(keys))
        elif isinstance(wanted, list) and isinstance(got, list):
            size = max(len(wanted), len(got))
            pending.extend(
                (f"{prefix}{index}", wanted[index] if index < len(wanted) else _MISSING,
                 got[index] if index < len(got) else _MISSING)
                for index in reversed(range(size)))
        elif wanted is _MISSING or got is _MISSING or not json_equal(wanted, got, budget):
            return path, wanted, got
    return None


def _mismatch(expected: Any, output: Any, budget: StepBudget | None = None) -> str:
    """One line naming the first field where `output` differs from `expected`, and both values."""
    diff = first_difference(expected, output, budget)
    where, wanted, got = diff if diff is not None else ("", expected, output)
    where = where or "<output>"
    if got is _MISSING:
        return f"{where}: missing, expected {_short(wanted)}"
    if wanted is _MISSING:
        return f"{where}: not expected, found {_short(got)}"
    return f"{where}: expected {_short(wanted)}, found {_short(got)}"


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Pattern:
    """`pattern` compiled by RE2 (cached); `re2.error` or `UnicodeEncodeError` if it cannot be."""
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern on stderr
    compiled: Pattern = re2.compile(pattern, options)
    return compiled


def pattern_problem(pattern: Any) -> str | None:
    """Why `pattern` cannot be a `matches` check (None when it can): not a string, longer than
    `MAX_PATTERN_CHARS`, or not RE2 syntax (backreferences and lookaround are not)."""
    if not isinstance(pattern, str):
        return f"a matches pattern must be a string, found {_short(pattern)}"
    if len(pattern) > MAX_PATTERN_CHARS:
        return (f"regular expression of {len(pattern):,} characters "
                f"(at most {MAX_PATTERN_CHARS:,})")
    try:
        compile_pattern(pattern)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        return (f"bad regular expression {_short(pattern)}: {reason} (RE2 syntax: no "
                "backreferences or lookaround)")
    except UnicodeEncodeError:
        return f"bad regular expression {_short(pattern)}: not valid Unicode"
    return None


def _matches(where: str, pattern: Any, found: Any) -> str | None:
    problem = pattern_problem(pattern)
    if problem is not None:
        return f"{where}: {problem}"
    if isinstance(found, str) and len(found) > MAX_SUBJECT_CHARS:
        return (f"{where}: matches applies to at most {MAX_SUBJECT_CHARS:,} characters, "
                f"found {len(found):,}")
    if isinstance(found, str) and compile_pattern(pattern).search(found) is not None:
        return None
    return f"{where}: expected matches {_short(pattern)}, found {_short(found)}"


def evaluate_check(
    check: CheckLike, output: Any, budget: StepBudget | None = None
) -> str | None:
    """None when `check` holds for `output`, else why it does not. Comparisons spend `budget`
    (`TooLargeToCompare` when it runs out)."""
    found = resolve(output, check.path)
    where = check.path or "<output>"
    if check.op == "exists":
        wanted = True if check.value is None else bool(check.value)
        if (found is not _MISSING) == wanted:
            return None
        return f"{where}: expected {'present' if wanted else 'absent'}"
    if found is _MISSING:
        return f"{where}: missing (check {check.op} {_short(check.value)})"
    ok: bool
    if check.op == "eq":
        ok = json_equal(found, check.value, budget)
    elif check.op == "ne":
        ok = not json_equal(found, check.value, budget)
    elif check.op == "contains":
        ok = _contains(found, check.value, budget)
    elif check.op in ("gte", "lte"):
        if not (_is_number(found) and _is_number(check.value)):
            return f"{where}: {check.op} needs numbers, found {_short(found)}"
        ok = found >= check.value if check.op == "gte" else found <= check.value
    elif check.op == "type":
        kinds = JSON_TYPES.get(check.value) if isinstance(check.value, str) else None
        if kinds is None:
            return (f"{where}: unknown JSON type {_short(check.value)} "
                    f"(one of {', '.join(JSON_TYPES)})")
        ok = isinstance(found, kinds) and (check.value == "boolean" or not isinstance(found, bool))
    elif check.op == "matches":
        return _matches(where, check.value, found)
    else:
        return f"{where}: unknown check operation {check.op!r}"
    if ok:
        return None
    return f"{where}: expected {check.op} {_short(check.value)}, found {_short(found)}"


def evaluate(
    expected: Any | None, checks: Iterable[CheckLike], output: Any,
    budget: StepBudget | None = None,
) -> list[str]:
    """Every failure of `expected` (when given) and of each check, in order. All of them share
    one `budget` (a fresh `StepBudget` by default); once it is spent, one last line says the
    output is too large to compare and the remaining checks are not evaluated."""
    budget = budget or StepBudget()
    failures = []
    try:
        if expected is not None and not json_equal(output, expected, budget):
            failures.append(_mismatch(expected, output, budget))
        for check in checks:
            failure = evaluate_check(check, output, budget)
            if failure is not None:
                failures.append(failure)
    except TooLargeToCompare:
        failures.append(f"<output>: too large to compare (over {budget.steps:,} values visited)")
    return failures
