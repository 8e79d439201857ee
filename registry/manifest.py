"""The package manifest, `agent.json` at the archive root.

Invariants once a `Manifest` exists: `agent.json` and each of its fields are within the bounds
of `registry.config.ManifestLimits` (every refusal names the field); `name` is a well-formed
`namespace/name`; `version` is a PEP 440 version exactly as written (no surrounding whitespace,
which `packaging` would quietly strip) and carries no local label (`1.0+local`, which public
indexes refuse); every `requires` value is a valid `packaging` specifier set keyed by a
well-formed package name, `entry` is `path.py:function`; `homepage` is an http(s) URL; every
template path lies under
`templates/` and ends in `.json`. Whether those files exist is the archive's business
(`registry.archive`), since the manifest alone cannot know.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence, Sized
from typing import Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion as _PackagingInvalidVersion
from packaging.version import Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.template import VersionText
from registry.config import ManifestLimits
from registry.errors import InvalidName, InvalidVersion, ManifestError
from registry.names import split_name

# All used with fullmatch: `$` would let a trailing newline through.
_ENTRY = re.compile(r"(?P<path>[A-Za-z0-9_][A-Za-z0-9_./-]*\.py):(?P<func>[A-Za-z_][A-Za-z0-9_]*)")
_VERSION_CHARS = re.compile(r"[A-Za-z0-9.!+_-]+")
_HOMEPAGE = re.compile(r"https?://[!-~]+")  # printable ASCII, no space
DEFAULT_MANIFEST_LIMITS = ManifestLimits()
# Deeper JSON than this is refused before pydantic sees it (its serializer gives up past 255
# levels with an exception of its own, and the host compares and shows example values).
MAX_JSON_DEPTH = 64

CheckOp = Literal["eq", "ne", "contains", "gte", "lte", "type", "exists", "matches"]


class Check(BaseModel):
    """One assertion on an example's output; `path` is dotted (`items.0.name`), "" = whole."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = ""
    op: CheckOp
    value: Any = None


class Example(BaseModel):
    """An input the sandbox runs to vet the package, with the expected output or checks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    input: dict[str, Any]
    expected: Any | None = None
    checks: list[Check] = Field(default_factory=list)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: VersionText
    summary: str = Field(min_length=1)
    description: str = ""
    license: str = Field(min_length=1)
    authors: list[str] = Field(default_factory=list)
    homepage: str | None = None
    keywords: list[str] = Field(default_factory=list)
    entry: str = "process.py:process"
    templates: list[str] = Field(min_length=1)
    requires: dict[str, str] = Field(default_factory=dict)
    permissions: list[str] = Field(default_factory=list)
    # The language models (aliases or `provider:model`) the package's code may call through the
    # sandbox host (docs/models.md); empty: its code may call none.
    models: list[str] = Field(default_factory=list)
    examples: list[Example] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            split_name(value)
        except InvalidName as exc:
            raise ValueError(exc.reason) from None
        return value

    @field_validator("entry")
    @classmethod
    def _entry(cls, value: str) -> str:
        match = _ENTRY.fullmatch(value)
        if not match or ".." in match["path"].split("/"):
            raise ValueError("expected 'relative/path.py:function'")
        return value

    @field_validator("templates")
    @classmethod
    def _templates(cls, value: list[str]) -> list[str]:
        for path in value:
            parts = path.split("/")
            if parts[0] != "templates" or len(parts) < 2 or ".." in parts or "" in parts:
                raise ValueError(f"template {path!r} must be a path under 'templates/'")
            if not path.endswith(".json"):
                raise ValueError(f"template {path!r} must be a .json file")
        if len(set(value)) != len(value):
            raise ValueError("template paths are listed twice")
        return value

    @field_validator("requires")
    @classmethod
    def _requires(cls, value: dict[str, str]) -> dict[str, str]:
        for dep, spec in value.items():
            try:
                split_name(dep)
                SpecifierSet(spec)
            except InvalidName as exc:
                raise ValueError(f"requirement {dep!r}: {exc.reason}") from None
            except InvalidSpecifier:
                raise ValueError(f"requirement {dep!r}: bad specifier {spec!r}") from None
        return value

    @field_validator("homepage")
    @classmethod
    def _homepage(cls, value: str | None) -> str | None:
        if value is not None and not _HOMEPAGE.fullmatch(value):
            raise ValueError("expected an http:// or https:// URL without spaces")
        return value

    @property
    def namespace(self) -> str:
        return self.name.split("/")[0]

    @property
    def short_name(self) -> str:
        return self.name.split("/")[1]

    @property
    def entry_path(self) -> str:
        return self.entry.rsplit(":", 1)[0]

    @property
    def entry_function(self) -> str:
        return self.entry.rsplit(":", 1)[1]


def _count(errors: list[tuple[str, str]], field: str, items: Sized, most: int) -> None:
    if len(items) > most:
        errors.append((field, f"at most {most} entries, got {len(items)}"))


def _length(errors: list[tuple[str, str]], field: str, text: str | None, most: int) -> None:
    if text is not None and len(text) > most:
        errors.append((field, f"at most {most} characters, got {len(text)}"))


def _bounded_items(
    errors: list[tuple[str, str]], field: str, items: Sequence[str], most: int, chars: int
) -> None:
    """Count and length of a list of strings; each item 1-`chars` characters, no control or
    surrounding whitespace (they name things: a keyword, a permission, an author)."""
    _count(errors, field, items, most)
    for index, item in enumerate(items[:most]):
        if not 1 <= len(item) <= chars:
            errors.append((f"{field}.{index}", f"1 to {chars} characters, got {len(item)}"))
        elif item != item.strip() or not item.isprintable():
            errors.append((f"{field}.{index}", "no control characters or surrounding spaces"))


def bound_errors(manifest: Manifest, limits: ManifestLimits) -> list[tuple[str, str]]:
    """Every field of `manifest` over its bound, as (field, message) pairs."""
    errors: list[tuple[str, str]] = []
    _length(errors, "version", manifest.version, limits.version_chars)
    _length(errors, "summary", manifest.summary, limits.summary_chars)
    _length(errors, "description", manifest.description, limits.description_chars)
    _length(errors, "license", manifest.license, limits.license_chars)
    _length(errors, "homepage", manifest.homepage, limits.homepage_chars)
    _length(errors, "entry", manifest.entry, limits.entry_chars)
    _bounded_items(errors, "authors", manifest.authors, limits.authors, limits.author_chars)
    _bounded_items(errors, "keywords", manifest.keywords, limits.keywords, limits.keyword_chars)
    _bounded_items(errors, "permissions", manifest.permissions, limits.permissions,
                   limits.permission_chars)
    _bounded_items(errors, "models", manifest.models, limits.permissions,
                   limits.permission_chars)
    _bounded_items(errors, "templates", manifest.templates, limits.templates,
                   limits.template_path_chars)
    _count(errors, "requires", manifest.requires, limits.requires)
    for dep, spec in list(manifest.requires.items())[: limits.requires]:
        _length(errors, f"requires.{dep}", spec, limits.specifier_chars)
    _count(errors, "examples", manifest.examples, limits.examples)
    for index, example in enumerate(manifest.examples[: limits.examples]):
        where = f"examples.{index}"
        _length(errors, f"{where}.name", example.name, limits.example_name_chars)
        _count(errors, f"{where}.checks", example.checks, limits.checks)
        size = len(example.model_dump_json().encode("utf-8"))
        if size > limits.example_bytes:
            errors.append((where, f"at most {limits.example_bytes} bytes as JSON, got {size}"))
    return errors


def _shown(errors: list[tuple[str, str]], most: int = 20) -> list[tuple[str, str]]:
    """The first `most` errors: a hostile manifest can hold thousands, one message need not."""
    if len(errors) <= most:
        return errors
    return [*errors[:most], ("", f"and {len(errors) - most} more errors")]


def _check_version_text(version: str, source: str, limits: ManifestLimits) -> None:
    """The version exactly as written: PEP 440, no whitespace, no local label, not too long."""
    try:
        parsed = Version(version)
    except _PackagingInvalidVersion:
        raise InvalidVersion(version) from None
    if not _VERSION_CHARS.fullmatch(version):
        raise InvalidVersion(version)  # `packaging` strips whitespace: we keep what is written
    if len(version) > limits.version_chars:
        raise ManifestError(
            source, [("version", f"at most {limits.version_chars} characters, got {len(version)}")]
        )
    if parsed.local is not None:
        raise ManifestError(source, [(
            "version", f"local version label '+{parsed.local}' is not allowed on a public "
            f"registry; publish {parsed.public}"
        )])


def _too_deep(data: Any, most: int) -> str | None:
    """The dotted path of the first value nested deeper than `most` levels, or None. Iterative."""
    pending: list[tuple[Any, str, int]] = [(data, "", 1)]
    while pending:
        value, path, depth = pending.pop()
        if not isinstance(value, dict | list):
            continue
        if depth > most:
            parts = path.split(".")
            return ".".join(parts[:6]) + ("…" if len(parts) > 6 else "")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        pending.extend((item, f"{path}.{key}" if path else str(key), depth + 1)
                       for key, item in items)
    return None


def parse_manifest(
    data: bytes | str | dict[str, Any], source: str = "agent.json",
    limits: ManifestLimits = DEFAULT_MANIFEST_LIMITS,
) -> Manifest:
    """Parse and validate a manifest within `limits`; `InvalidVersion` for a version that is not
    PEP 440 as written, else `ManifestError` naming each field at fault."""
    if not isinstance(data, dict):
        size = len(data.encode("utf-8") if isinstance(data, str) else data)
        if size > limits.manifest_bytes:
            limit = limits.manifest_bytes
            raise ManifestError(
                source, [("", f"the manifest is {size} bytes, over the {limit}-byte limit")]
            )
        try:
            data = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ManifestError(source, [("", f"not valid JSON: {exc}")]) from None
        except RecursionError:
            # json's parser recurses per level: a hostile `[[[[...` must be a refusal, not a 500.
            raise ManifestError(source, [("", "JSON nested too deeply")]) from None
        if not isinstance(data, dict):
            raise ManifestError(source, [("", "the manifest must be a JSON object")])
    deep = _too_deep(data, MAX_JSON_DEPTH)
    if deep is not None:
        raise ManifestError(source, [(deep, f"nested deeper than {MAX_JSON_DEPTH} levels")])
    version = data.get("version")
    if isinstance(version, str):
        _check_version_text(version, source, limits)
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        errors = [
            (".".join(str(p) for p in err["loc"]), err["msg"].removeprefix("Value error, "))
            for err in exc.errors()
        ]
        raise ManifestError(source, _shown(errors)) from None
    errors = bound_errors(manifest, limits)
    if errors:
        raise ManifestError(source, _shown(errors))
    return manifest
