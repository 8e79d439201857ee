"""Package names: parsing, normalization, reserved names and look-alikes.

A package name is `namespace/name`. Both parts start and end with an ASCII letter or digit and
may contain `-`, `_` and `.` in between; every check matches the *whole* text (`fullmatch`:
Python's `$` would accept a trailing newline), so no whitespace, control, invisible or
non-ASCII character gets through. The normalized form (PEP 503 style: lower case, every run of
`-`, `_`, `.` folded to one `-`) is what uniqueness is decided on; the display form is kept
beside it.

Look-alikes are decided by who holds the namespace, never by a signal a stranger can inflate
(downloads): a namespace's holder may publish any well-formed, unreserved name in it, and
nothing published elsewhere can stop them. Impersonation is refused where it starts, when a
namespace is claimed: a namespace within one edit (Damerau-Levenshtein) of a namespace another
publisher already holds is refused (`check_namespace_lookalike`), unless the two differ only in
their numbers (`team1`, `team2`). Inside a namespace, a new package that normalizes like an
existing one but is spelled differently is refused too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from registry.errors import InvalidName, LookalikeName, ReservedName

# One part of a name (namespace, short name, publisher name), unanchored so that each user
# anchors it as its regex dialect needs: the API declares `^...$` in its OpenAPI document.
NAME_PART_PATTERN = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?"
NAME_PART_MAX_LENGTH = 64
NAME_PART_RULE = "1-64 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
_PART = re.compile(NAME_PART_PATTERN)  # always used with fullmatch
_SEPARATORS = re.compile(r"[-_.]+")
_DIGITS = re.compile(r"[0-9]+")


def normalize_part(part: str) -> str:
    return _SEPARATORS.sub("-", part).lower()


def split_name(name: str) -> tuple[str, str]:
    """`("namespace", "name")` of a well-formed package name; `InvalidName` otherwise."""
    if name.count("/") != 1:
        raise InvalidName(name, "expected 'namespace/name'")
    namespace, short = name.split("/")
    for part in (namespace, short):
        if not _PART.fullmatch(part):
            raise InvalidName(
                name, f"{part!r} must be {NAME_PART_RULE}"
            )
    return namespace, short


def validate_namespace(namespace: str) -> str:
    """The normalized namespace; `InvalidName` when it is not a well-formed part."""
    if not _PART.fullmatch(namespace):
        raise InvalidName(namespace, f"must be {NAME_PART_RULE}", what="namespace")
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


def check_lookalike(name: str, same_normalized: str | None) -> None:
    """Refuse `name` (a new release's package name) when a package with the same normalized
    name exists under another spelling (`same_normalized` is its display name, or None)."""
    if same_normalized is not None and same_normalized != name:
        raise LookalikeName(name, same_normalized)


def check_namespace_lookalike(namespace: str, held: Iterable[str], min_length: int) -> None:
    """Refuse claiming `namespace` when it is one edit away from a namespace in `held`
    (normalized namespaces other publishers hold). Names shorter than `min_length` are not
    compared: two-letter namespaces have too many honest neighbours."""
    normalized = normalize_part(namespace)
    if len(normalized) < min_length:
        return
    for other in held:
        if (
            len(other) >= min_length
            and edit_distance_at_most_one(normalized, other)
            and not numbered_siblings(normalized, other)
        ):
            raise LookalikeName(namespace, other, what="namespace")


def numbered_siblings(a: str, b: str) -> bool:
    """True when `a` and `b` differ only in their numbers (`team1`, `team2`, `team10`): a number
    names another thing, it does not imitate one. `acme` and `acme1` (a number added) or `c0de`
    and `code` (a digit for a letter) are not siblings."""
    return a != b and _DIGITS.sub("#", a) == _DIGITS.sub("#", b)
