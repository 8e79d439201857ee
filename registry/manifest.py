"""The package manifest, `agent.json` at the archive root.

Invariants once a `Manifest` exists: `name` is a well-formed `namespace/name`, `version` parses
under PEP 440, every `requires` value is a valid `packaging` specifier set keyed by a
well-formed package name, `entry` is `path.py:function`, and every template path lies under
`templates/` and ends in `.json`. Whether those files exist is the archive's business
(`registry.archive`), since the manifest alone cannot know.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion as _PackagingInvalidVersion
from packaging.version import Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.template import VersionText
from registry.errors import InvalidName, InvalidVersion, ManifestError
from registry.names import split_name

_ENTRY = re.compile(
    r"^(?P<path>[A-Za-z0-9_][A-Za-z0-9_./-]*\.py):(?P<func>[A-Za-z_][A-Za-z0-9_]*)$"
)

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

    name: str = Field(min_length=1, max_length=100)
    input: dict[str, Any]
    expected: Any | None = None
    checks: list[Check] = Field(default_factory=list)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: VersionText
    summary: str = Field(min_length=1, max_length=300)
    description: str = Field(default="", max_length=20_000)
    license: str = Field(min_length=1, max_length=100)
    authors: list[str] = Field(default_factory=list)
    homepage: str | None = None
    keywords: list[str] = Field(default_factory=list, max_length=30)
    entry: str = "process.py:process"
    templates: list[str] = Field(min_length=1)
    requires: dict[str, str] = Field(default_factory=dict)
    permissions: list[str] = Field(default_factory=list)
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
        match = _ENTRY.match(value)
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

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        for word in value:
            if not word or len(word) > 50:
                raise ValueError("keywords are 1-50 characters")
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


def parse_manifest(data: bytes | str | dict[str, Any], source: str = "agent.json") -> Manifest:
    """Parse and validate a manifest; `InvalidVersion` for a bad version, else `ManifestError`."""
    if not isinstance(data, dict):
        try:
            data = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ManifestError(source, [("", f"not valid JSON: {exc}")]) from None
        except RecursionError:
            # json's parser recurses per level: a hostile `[[[[...` must be a refusal, not a 500.
            raise ManifestError(source, [("", "JSON nested too deeply")]) from None
        if not isinstance(data, dict):
            raise ManifestError(source, [("", "the manifest must be a JSON object")])
    version = data.get("version")
    if isinstance(version, str):
        try:
            Version(version)
        except _PackagingInvalidVersion:
            raise InvalidVersion(version) from None
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        errors = [
            (".".join(str(p) for p in err["loc"]), err["msg"].removeprefix("Value error, "))
            for err in exc.errors()
        ]
        raise ManifestError(source, errors) from None
