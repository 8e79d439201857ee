"""The resolved template that agents and plugins see: a plain frozen record, no pydantic.

`core.template.AgentTemplate` (pydantic) validates template *documents* as written in files.
Once a template is resolved (inheritance applied) and validated, the manager serves it as a
`ResolvedTemplate` built by `from_document` from the resolved document. Building one is a handful
of type checks, which is what lets a one-shot command serve a template from the disk cache
(`core.template_cache`) without importing pydantic at all. Every template the manager serves,
from the disk cache or not, is a `ResolvedTemplate`, so a plugin sees the same object either way.

Invariants:
- `from_document(doc)` accepts exactly the documents `document()` returns: every field present,
  none extra, each of its JSON type (`metadata` holding `hash` and `lineage`); anything else
  raises `ValueError`, so a cache file is never trusted blindly;
- instances are frozen and shared by every agent of the template: treat nested lists and dicts as
  read-only (`document()` returns a deep copy);
- `metadata["hash"]` is the content hash (`core.hashing`) of `document()` without the hash;
  `metadata["lineage"]` is `[name, parent, grandparent, ...]`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FIELDS = (
    "name", "version", "description", "role", "capabilities", "tools", "model", "prompts",
    "parameters", "hooks", "extends", "implementation", "metadata",
)  # fmt: skip
"""The fields of a resolved document, in the order `agentfactory templates show` prints them."""

OPTIONAL_FIELDS = ("workflow", "output_schema")
"""Fields a resolved document holds only when they are set (a workflow template's steps, a prompt
agent's output schema), so other documents, and their hashes, are the same as before they
existed."""

MODEL_FIELDS = ("provider", "name", "parameters")


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """Which language model an agent would use (`model` of a template)."""

    provider: str
    name: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ResolvedTemplate:
    """A resolved, validated template. Built by the template manager; see the module doc."""

    name: str
    version: str
    description: str
    role: str
    capabilities: list[str]
    tools: list[str]
    model: ResolvedModel
    prompts: dict[str, str]
    parameters: dict[str, Any]
    hooks: dict[str, dict[str, Any]]
    extends: str | None
    implementation: str | None
    metadata: dict[str, Any]
    workflow: dict[str, Any] | None = None  # a workflow's steps (`core.workflow.Workflow`)
    output_schema: dict[str, Any] | None = None  # a prompt agent's answer schema (docs/models.md)

    @property
    def hash(self) -> str:
        """The sha256 content hash of this template (see `core.hashing`)."""
        value: str = self.metadata["hash"]
        return value

    @property
    def lineage(self) -> list[str]:
        """`[name, parent, grandparent, ...]`."""
        return list(self.metadata["lineage"])

    def document(self) -> dict[str, Any]:
        """The resolved JSON document (a deep copy): what `templates show` prints."""
        model = self.model
        document = {field: getattr(self, field) for field in FIELDS}
        document["model"] = {
            "provider": model.provider, "name": model.name, "parameters": model.parameters
        }
        if self.workflow is not None:
            document["workflow"] = self.workflow
        if self.output_schema is not None:
            document["output_schema"] = self.output_schema
        return copy.deepcopy(document)

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> ResolvedTemplate:
        """The template of a resolved `document`; `ValueError` if it is not exactly one.

        The template keeps `document`'s lists and dicts (no copy): pass a fresh document."""
        if not isinstance(document, Mapping):
            raise ValueError(f"template must be an object, not {type(document).__name__}")
        workflow = document.get("workflow")
        if workflow is not None and not isinstance(workflow, dict):
            raise ValueError("workflow must be an object")
        output_schema = document.get("output_schema")
        if output_schema is not None and not isinstance(output_schema, dict):
            raise ValueError("output_schema must be an object")
        _exact_keys({k: v for k, v in document.items() if k not in OPTIONAL_FIELDS}, FIELDS,
                    "template")
        model = document["model"]
        _exact_keys(model, MODEL_FIELDS, "model")
        metadata = _dict(document, "metadata")
        if not isinstance(metadata.get("hash"), str):
            raise ValueError("metadata.hash must be a string")
        _str_list(metadata, "lineage")
        return cls(
            name=_str(document, "name"),
            version=_str(document, "version"),
            description=_str(document, "description"),
            role=_str(document, "role"),
            capabilities=_str_list(document, "capabilities"),
            tools=_str_list(document, "tools"),
            model=ResolvedModel(_str(model, "provider"), _str(model, "name"),
                                _dict(model, "parameters")),
            prompts=_dict_of(document, "prompts", str),
            parameters=_dict(document, "parameters"),
            hooks=_dict_of(document, "hooks", dict),
            extends=_optional_str(document, "extends"),
            implementation=_optional_str(document, "implementation"),
            metadata=metadata,
            workflow=workflow,
            output_schema=output_schema,
        )


def _exact_keys(value: Any, keys: tuple[str, ...], what: str) -> None:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be an object, not {type(value).__name__}")
    if set(value) != set(keys):
        raise ValueError(f"{what} fields differ: {sorted(set(value) ^ set(keys))}")


def _str(document: Mapping[str, Any], key: str) -> str:
    value = document[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, not {type(value).__name__}")
    return value


def _optional_str(document: Mapping[str, Any], key: str) -> str | None:
    return None if document[key] is None else _str(document, key)


def _str_list(document: Mapping[str, Any], key: str) -> list[str]:
    value = document[key]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{key} must be a list of strings")
    return value


def _dict(document: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = document[key]
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{key} must be an object")
    return value


def _dict_of(document: Mapping[str, Any], key: str, kind: type) -> dict[str, Any]:
    value = _dict(document, key)
    if not all(isinstance(item, kind) for item in value.values()):
        raise ValueError(f"{key} values must be of type {kind.__name__}")
    return value
