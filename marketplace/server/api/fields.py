"""Constrained request fields: each one declares in the OpenAPI document exactly the rule the
server enforces, and refuses in the field's own words.

Invariants:
- One rule, two readers. A `Rule` carries the JSON Schema keywords that document it and the test
  that enforces it, built from the same constant: name parts come from `registry.names`, never
  copied. Patterns are declared `^...$` and enforced with `re.fullmatch` on the unanchored
  pattern, so both refuse a trailing newline (Python's `$` would let one through).
- The patterns use only what JSON Schema (ECMA-262) and Python's `re` read alike: ASCII
  character classes, groups, alternation and plain quantifiers. Case-insensitive words are
  spelled out (`[rR][cC]`), since JSON Schema has no flags.
- Whatever passes a rule also passes the registry's own checks (a PEP 440 version here parses
  with `packaging`, a specifier set builds a `SpecifierSet`): a client that validates against the
  document is never refused for the shape of its input, only for what does not exist.
- A refusal is a `PydanticCustomError` whose message names the field in a user's terms ("a
  namespace is ..."), which `api.problems` turns into a 422 problem: never a regex.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Path
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from registry.config import RegistryConfig
from registry.models import Release
from registry.names import NAME_PART_MAX_LENGTH, NAME_PART_PATTERN, NAME_PART_RULE
from registry.schemas import SCOPES
from registry.search import SORTS


@dataclass(frozen=True, eq=False)
class Rule:
    """`Annotated` metadata: the value must pass `test`; `schema` declares the same rule in the
    OpenAPI document; `message` is the refusal, in words."""

    schema: dict[str, Any]
    test: Callable[[Any], bool]
    message: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        def check(value: Any) -> Any:
            if not self.test(value):
                raise PydanticCustomError("rule", self.message)
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        declared = handler(schema)
        declared.update(self.schema)
        return declared


def matching(pattern: str, message: str, max_length: int | None = None) -> Rule:
    """A string that matches `pattern` in full (and is at most `max_length` long)."""
    regex = re.compile(pattern)
    schema: dict[str, Any] = {"pattern": f"^{pattern}$"}
    if max_length is not None:
        schema["maxLength"] = max_length

    def test(value: str) -> bool:
        too_long = max_length is not None and len(value) > max_length
        return not too_long and regex.fullmatch(value) is not None

    return Rule(schema, test, message)


def between(low: int, high: int, message: str) -> Rule:
    return Rule({"minimum": low, "maximum": high}, lambda value: low <= value <= high, message)


def one_of(values: Collection[str], message: str) -> Rule:
    allowed = frozenset(values)
    return Rule({"enum": sorted(allowed)}, lambda value: value in allowed, message)


def _anycase(text: str) -> str:
    """`text` as a pattern matching its letters in either case (JSON Schema has no flags)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in text)


# PEP 440, as `packaging.version.VERSION_PATTERN` reads it (case-insensitive, optional `v`),
# minus the surrounding whitespace `packaging` strips.
_N = "[0-9]+"
_SEP = "[-_.]?"
_V = f"{_anycase('v')}?"
_EPOCH = f"(?:{_N}!)?"
_RELEASE = rf"{_N}(?:\.{_N})*"
_PRE = f"(?:{_SEP}{_anycase('(?:alpha|a|beta|b|preview|pre|c|rc)')}{_SEP}[0-9]*)?"
_POST = f"(?:-{_N}|{_SEP}{_anycase('(?:post|rev|r)')}{_SEP}[0-9]*)?"
_DEV = f"(?:{_SEP}{_anycase('dev')}{_SEP}[0-9]*)?"
_LOCAL = r"(?:\+[a-zA-Z0-9]+(?:[-_.][a-zA-Z0-9]+)*)?"
VERSION_PATTERN = f"{_V}{_EPOCH}{_RELEASE}{_PRE}{_POST}{_DEV}{_LOCAL}"

# One PEP 440 specifier, as `packaging.specifiers.Specifier` reads it, without the `===`
# escape hatch (an arbitrary string, which no published version needs).
_SPECIFIER = "(?:" + "|".join(
    [
        rf"(?:==|!=) *{_V}{_EPOCH}{_RELEASE}(?:\.\*|{_PRE}{_POST}{_DEV}{_LOCAL})",
        rf"~= *{_V}{_EPOCH}{_N}(?:\.{_N})+{_PRE}{_POST}{_DEV}",
        rf"(?:<=|>=|<|>) *{_V}{_EPOCH}{_RELEASE}{_PRE}{_POST}{_DEV}",
    ]
) + ")"
SPECIFIER_SET_PATTERN = rf" *(?:{_SPECIFIER} *(?:, *{_SPECIFIER} *)*)?"

# Ids the registry hands out: a key id is the first 32 hex digits of the key's sha256
# (`registry.signing.key_id_for`), a token id 8 random bytes in hex (`registry.accounts`).
KEY_ID_PATTERN = "[0-9a-f]{32}"
TOKEN_ID_PATTERN = "[0-9a-f]{16}"
# Standard base64 with padding (RFC 4648 section 4) of exactly 32 bytes (an Ed25519 public key)
# or 64 bytes (an Ed25519 signature); the last character carries only zero padding bits. A v2
# release signature is 96 bytes (record digest + signature, `registry.signing`): no padding.
PUBLIC_KEY_B64_PATTERN = "[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]="
SIGNATURE_B64_PATTERN = "(?:[A-Za-z0-9+/]{85}[AQgw]==|[A-Za-z0-9+/]{128})"

# A version is stored in a column of this width: a longer one cannot name a release.
VERSION_MAX_LENGTH: int = Release.__table__.c.version.type.length  # type: ignore[attr-defined]
_LIMITS = RegistryConfig()
MAX_REVIEW_TITLE = _LIMITS.max_review_title
MAX_REVIEW_BODY = _LIMITS.max_review_body


def _name_part(what: str) -> Rule:
    return matching(NAME_PART_PATTERN, f"a {what} is {NAME_PART_RULE}", NAME_PART_MAX_LENGTH)


PUBLISHER_NAME = _name_part("publisher name")
NAMESPACE = _name_part("namespace")
PACKAGE_NAME = _name_part("package name")
# A package's full name where it is one value (a query, a successor): namespace/name.
FULL_NAME = matching(
    f"(?:{NAME_PART_PATTERN})/(?:{NAME_PART_PATTERN})",
    f"a package name is namespace/name, each part {NAME_PART_RULE}",
    2 * NAME_PART_MAX_LENGTH + 1,
)
VERSION = matching(
    VERSION_PATTERN, "a version is a PEP 440 version, such as 1.0.0 or 2.1rc1", VERSION_MAX_LENGTH
)
SPECIFIER_SET = matching(
    SPECIFIER_SET_PATTERN,
    "a version specifier is a comma-separated list of PEP 440 clauses, such as >=1.0,<2",
)
KEY_ID = matching(KEY_ID_PATTERN, "a key id is 32 lowercase hexadecimal digits")
TOKEN_ID = matching(TOKEN_ID_PATTERN, "a token id is 16 lowercase hexadecimal digits")
PUBLIC_KEY_B64 = matching(
    PUBLIC_KEY_B64_PATTERN, "a public key is 32 raw Ed25519 bytes in standard padded base64"
)
SIGNATURE_B64 = matching(
    SIGNATURE_B64_PATTERN,
    "a signature is 64 Ed25519 bytes (96 with its file record) in standard padded base64",
)
STARS = between(1, 5, "must be 1 to 5")
SCOPE = one_of(SCOPES, f"a scope is one of {', '.join(sorted(SCOPES))}")
SORT = one_of(SORTS, f"must be one of {', '.join(SORTS)}")

# Path parameters, as the routers declare them.
NamespacePath = Annotated[str, NAMESPACE, Path(description="The package's namespace.")]
NamePath = Annotated[str, PACKAGE_NAME, Path(description="The package's name in its namespace.")]
VersionPath = Annotated[str, VERSION, Path(description="A PEP 440 version of the package.")]
PublisherPath = Annotated[str, PUBLISHER_NAME, Path(description="The publisher's name.")]
KeyIdPath = Annotated[str, KEY_ID, Path(description="A signing key's id.")]
TokenIdPath = Annotated[str, TOKEN_ID, Path(description="An API token's id.")]
