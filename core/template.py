"""The typed agent template.

`AgentTemplate` is both the shape of one template document (as written in a file, possibly partial
because it `extends` a parent) and the shape of a resolved template (after inheritance). The JSON
Schema printed by `agentfactory templates schema` is generated from this model, so the schema and
the validator can never disagree. What the manager serves once a template is resolved is a
`core.resolved.ResolvedTemplate` (`as_resolved()`), a plain record that needs no pydantic.

Invariants:
- instances are frozen: a resolved template is shared by every agent built from it and by every
  thread reading the cache, so nobody may assign to it (nested lists and dicts are not deep-frozen;
  treat them as read-only);
- `name` is a lowercase identifier with at most one `/` (namespaced package templates);
- `version` is a valid PEP 440 version, kept as written;
- a resolved template carries `metadata["hash"]` (sha256 of its canonical JSON, see
  `core.hashing`) and `metadata["lineage"]` (`[name, parent, grandparent, ...]`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from packaging.version import InvalidVersion, Version
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from core.resolved import ResolvedTemplate
from core.workflow import IMPLEMENTATION as WORKFLOW_IMPLEMENTATION
from core.workflow import Workflow

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*)?$"
_NAME_RE = re.compile(NAME_PATTERN)

# Fields whose entries a child may remove with `$remove` (lists: items; dicts: keys).
REMOVABLE_FIELDS = ("capabilities", "tools", "prompts", "parameters", "hooks", "metadata", "model")


def check_name(value: str) -> str:
    """Return `value` if it is a valid template name, else raise ValueError."""
    if not _NAME_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid template name (lowercase letters, digits, '_' and '-', "
            "optionally one '/' for a namespace, e.g. 'acme/summarizer')"
        )
    return value


class ModelSettings(BaseModel):
    """Which language model an agent would use. Built-in agents are deterministic: `local`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(default="local", min_length=1)
    name: str = Field(default="deterministic", min_length=1)
    parameters: dict[str, Any] = Field(default_factory=dict)


def check_version(value: str) -> str:
    """`value` when it is a PEP 440 version; otherwise a ValueError pydantic reports."""
    try:
        Version(value)
    except InvalidVersion:
        raise ValueError(f"{value!r} is not a valid PEP 440 version") from None
    return value


VersionText = Annotated[str, AfterValidator(check_version)]
"""A version kept as written (display form), validated as PEP 440 (templates, manifests)."""


class AgentTemplate(BaseModel):
    """One agent template. See docs/templates.md for the format and the inheritance rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Lowercase identifier; one '/' allowed for a namespace.")
    version: VersionText = Field(description="PEP 440 version of this template.")
    description: str = ""
    role: str = ""
    capabilities: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    model: ModelSettings = Field(default_factory=ModelSettings)
    prompts: dict[str, str] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    hooks: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description=(
            "Settings for plugin hooks, keyed by plugin name: each plugin reads its own entry "
            "(e.g. {\"task_guard\": {\"max_chars\": 100000}}). See docs/plugins.md."
        ),
    )
    extends: str | None = Field(default=None, description="Name of the parent template.")
    implementation: str | None = Field(
        default=None, description="Name of the plugin implementation that processes tasks."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    workflow: Workflow | None = Field(
        default=None,
        exclude_if=lambda value: value is None,  # an agent's document (and hash) has no key
        description=(
            "Steps that run other agents; the template's implementation is then 'workflow'. "
            "See docs/workflows.md."
        ),
    )
    output_schema: dict[str, Any] | None = Field(
        default=None,
        exclude_if=lambda value: value is None,  # absent from a document (and hash) without one
        description=(
            "JSON Schema the answer of a prompt agent must match; the agent then returns the "
            "validated JSON. See docs/models.md."
        ),
    )
    remove: dict[str, list[str]] = Field(
        default_factory=dict,
        alias="$remove",
        description=(
            "Inherited entries to drop before this template's own content is merged: "
            "field (or dotted path into a dict field) -> list items or dict keys."
        ),
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("extends")
    @classmethod
    def _valid_parent(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value)

    @model_validator(mode="before")
    @classmethod
    def _workflow_implementation(cls, data: Any) -> Any:
        # A workflow is run by the `workflow` implementation; writing it out is optional.
        if isinstance(data, dict) and data.get("workflow") is not None:
            data = {"implementation": WORKFLOW_IMPLEMENTATION, **data}
        return data

    @model_validator(mode="after")
    def _workflow_runs_as_workflow(self) -> AgentTemplate:
        if self.workflow is not None and self.implementation != WORKFLOW_IMPLEMENTATION:
            raise ValueError(
                f"a template with a workflow has implementation {WORKFLOW_IMPLEMENTATION!r}, "
                f"not {self.implementation!r}"
            )
        return self

    @field_validator("remove")
    @classmethod
    def _valid_remove(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for path in value:
            if path.split(".", 1)[0] not in REMOVABLE_FIELDS:
                raise ValueError(
                    f"cannot remove entries from {path!r}; removable: {', '.join(REMOVABLE_FIELDS)}"
                )
        return value

    @property
    def hash(self) -> str:
        """The content hash of a resolved template ("" for an unresolved document)."""
        value = self.metadata.get("hash", "")
        return value if isinstance(value, str) else ""

    @property
    def lineage(self) -> list[str]:
        """`[name, parent, grandparent, ...]` of a resolved template (`[name]` if unresolved)."""
        value = self.metadata.get("lineage")
        return list(value) if isinstance(value, list) else [self.name]

    def document(self) -> dict[str, Any]:
        """The JSON document of this template, as it would be written to a file."""
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True)

    def as_resolved(self) -> ResolvedTemplate:
        """This template, once resolved (see `core.inheritance.resolve`), as the record the
        manager serves to agents and plugins."""
        return ResolvedTemplate.from_document(self.model_dump(mode="json", exclude={"remove"}))


def template_json_schema() -> dict[str, Any]:
    """The JSON Schema of a template document, generated from `AgentTemplate`."""
    schema = AgentTemplate.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Agent Factory template"
    return schema
