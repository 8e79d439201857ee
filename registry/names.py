"""Package names: parsing, normalization, reserved names and look-alikes.

A package name is `namespace/name`. Both parts start and end with a letter or digit and may
contain `-`, `_` and `.` in between. The normalized form (PEP 503 style: lower case, every run
of `-`, `_`, `.` folded to one `-`) is what uniqueness is decided on; the display form is kept
beside it. A new name is refused when it normalizes like an existing package spelled
differently, or when it is one edit (Damerau-Levenshtein) away from a package in *another*
namespace that has at least `lookalike_downloads` downloads (packages in one's own namespace
cannot be impersonated by anyone else, so they are not compared).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from registry.errors import InvalidName, LookalikeName, ReservedName

_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$")
_SEPARATORS = re.compile(r"[-_.]+")


def normalize_part(part: str) -> str:
    return _SEPARATORS.sub("-", part).lower()


def split_name(name: str) -> tuple[str, str]:
    """`("namespace", "name")` of a well-formed package name; `InvalidName` otherwise."""
    if name.count("/") != 1:
        raise InvalidName(name, "expected 'namespace/name'")
    namespace, short = name.split("/")
    for part in (namespace, short):
        if not _PART.match(part):
            raise InvalidName(
                name, f"{part!r} must be 1-64 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit"
            )
    return namespace, short


def validate_namespace(namespace: str) -> str:
    """The normalized namespace; `InvalidName` when it is not a well-formed part."""
    if not _PART.match(namespace):
        raise InvalidName(namespace, "a namespace is 1-64 letters, digits, '-', '_' or '.'")
    return normalize_part(namespace)


def normalize_name(name: str) -> str:
    namespace, short = split_name(name)
    return f"{normalize_part(namespace)}/{normalize_part(short)}"


def check_reserved(name: str, reserved: Iterable[str]) -> None:
    namespace, short = split_name(name)
    reserved_set = set(reserved)
    if normalize_part(short) in reserved_set or normalize_part(namespace) in reserved_set:
        raise ReservedName(name)


def edit_distance_at_most_one(a: str, b: str) -> bool:
    """True when `a` and `b` differ by at most one insertion, deletion, substitution or swap
    of two adjacent characters (optimal string alignment distance <= 1)."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diffs = [i for i in range(la) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2
            and diffs[1] == diffs[0] + 1
            and a[diffs[0]] == b[diffs[1]]
            and a[diffs[1]] == b[diffs[0]]
        )
    shorter, longer = (a, b) if la < lb else (b, a)
    i = 0
    while i < len(shorter) and shorter[i] == longer[i]:
        i += 1
    return shorter[i:] == longer[i + 1 :]


def check_lookalike(
    name: str, same_normalized: str | None, popular: Iterable[str]
) -> None:
    """Refuse `name` (a new package) when it imitates an existing one.

    `same_normalized` is the display name of an existing package with the same normalized
    form (or None); `popular` yields display names of packages with many downloads.
    """
    if same_normalized is not None and same_normalized != name:
        raise LookalikeName(name, same_normalized)
    normalized = normalize_name(name)
    namespace = normalized.split("/")[0]
    for existing in popular:
        other = normalize_name(existing)
        if other.split("/")[0] == namespace or other == normalized:
            continue
        if edit_distance_at_most_one(normalized, other):
            raise LookalikeName(name, existing)
