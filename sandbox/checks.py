"""Evaluate a package example's `expected` value and `checks` against an agent's output.

Invariants: evaluation never raises on any JSON output; each failed expectation yields one
human-readable line naming the path, the operation and what was found. `expected` is exact JSON
equality (`1` equals `1.0`, but `True` is not `1`); a check whose path is missing fails, except
`exists` with value false.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Protocol

_MISSING = object()
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
}


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
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            index = int(part)
            if not -len(current) <= index < len(current):
                return _MISSING
            current = current[index]
        else:
            return _MISSING
    return current


def json_equal(left: Any, right: Any) -> bool:
    """Equality as JSON sees it: booleans are not numbers, lists compare in order."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    return type(left) is type(right) and bool(left == right)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _contains(found: Any, value: Any) -> bool:
    if isinstance(found, str):
        return isinstance(value, str) and value in found
    if isinstance(found, list):
        return any(json_equal(item, value) for item in found)
    if isinstance(found, dict):
        return isinstance(value, str) and value in found
    return False


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def evaluate_check(check: CheckLike, output: Any) -> str | None:
    """None when `check` holds for `output`, else why it does not."""
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
        ok = json_equal(found, check.value)
    elif check.op == "ne":
        ok = not json_equal(found, check.value)
    elif check.op == "contains":
        ok = _contains(found, check.value)
    elif check.op in ("gte", "lte"):
        if not (_is_number(found) and _is_number(check.value)):
            return f"{where}: {check.op} needs numbers, found {_short(found)}"
        ok = found >= check.value if check.op == "gte" else found <= check.value
    elif check.op == "type":
        kinds = JSON_TYPES.get(str(check.value))
        if kinds is None:
            return f"{where}: unknown JSON type {check.value!r} (one of {', '.join(JSON_TYPES)})"
        ok = isinstance(found, kinds) and (check.value == "boolean" or not isinstance(found, bool))
    elif check.op == "matches":
        try:
            ok = isinstance(found, str) and re.search(str(check.value), found) is not None
        except re.error as exc:
            return f"{where}: bad regular expression {check.value!r}: {exc}"
    else:
        return f"{where}: unknown check operation {check.op!r}"
    if ok:
        return None
    return f"{where}: expected {check.op} {_short(check.value)}, found {_short(found)}"


def evaluate(expected: Any | None, checks: Iterable[CheckLike], output: Any) -> list[str]:
    """Every failure of `expected` (when given) and of each check, in order."""
    failures = []
    if expected is not None and not json_equal(output, expected):
        failures.append(f"<output>: expected {_short(expected)}, found {_short(output)}")
    for check in checks:
        failure = evaluate_check(check, output)
        if failure is not None:
            failures.append(failure)
    return failures
