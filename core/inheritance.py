"""Resolving `extends` chains.

Rules (documented for users in docs/templates.md):
- a chain may be any depth; the parent is resolved first, then the child is applied on top;
- a child first drops the inherited entries it names in `$remove` (list items or dict keys, by
  field or dotted path such as `model.parameters`), then its own content is merged:
  dicts merge deeply, lists are an ordered union (parent items first, then the child's new
  items), scalars are overridden; a child's `workflow` replaces its parent's whole (steps are
  a program, not settings: merging two would run steps neither author wrote);
- only fields the child actually wrote take part in the merge, so a child that does not mention
  `tools` inherits them unchanged instead of resetting them to `[]`;
- a cycle raises `InheritanceCycle` and a missing parent raises `TemplateNotFound`, both naming the
  chain that led there; removing an entry the parent does not have is a validation error (it is
  almost always a typo that would silently keep, say, a tool the child meant to drop).

The result is validated again as a whole and carries `metadata["hash"]` and `metadata["lineage"]`.
A workflow's steps must name agents the same lookup knows (`core.workflow.agent_problems`), so a
workflow naming an agent nobody provides is refused when it is loaded.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from core.errors import InheritanceCycle, TemplateNotFound, TemplateValidationError
from core.hashing import content_hash
from core.loader import parse_template
from core.template import AgentTemplate

Lookup = Callable[[str], AgentTemplate | None]
"""Returns the unresolved template of that name, or None when there is none."""

_COMPUTED_METADATA = ("hash", "lineage")


def merge(parent: Any, child: Any) -> Any:
    """Merge `child` over `parent`: deep for dicts, ordered union for lists, override otherwise."""
    if isinstance(parent, dict) and isinstance(child, dict):
        merged = dict(parent)
        for key, value in child.items():
            merged[key] = merge(parent[key], value) if key in parent else value
        return merged
    if isinstance(parent, list) and isinstance(child, list):
        union = list(parent)
        for item in child:
            if item not in union:
                union.append(item)
        return union
    return child


def written_fields(template: AgentTemplate) -> dict[str, Any]:
    """The fields a template document actually sets (nested models included), as plain JSON."""
    return template.model_dump(mode="json", by_alias=True, exclude_unset=True)


def apply_removals(document: dict[str, Any], removals: dict[str, list[str]], source: str) -> None:
    """Drop the named inherited entries from `document` in place."""
    problems: list[tuple[str, str]] = []
    for path, entries in removals.items():
        target: Any = document
        for part in path.split("."):
            target = target.get(part) if isinstance(target, dict) else None
        for entry in entries:
            where = f"$remove.{path}"
            if isinstance(target, list) and entry in target:
                target.remove(entry)
            elif isinstance(target, dict) and entry in target:
                del target[entry]
            else:
                problems.append((where, f"{entry!r} is not inherited, nothing to remove"))
    if problems:
        raise TemplateValidationError(source, problems)


def check_step_agents(name: str, template: AgentTemplate, lookup: Lookup) -> None:
    """Refuse workflow `template` if a step names an agent `lookup` does not know, at a version
    outside the step's specifier, or a chain of workflows leads back to it."""
    from core.workflow import agent_problems

    def known(agent: str) -> tuple[str | None, Any] | None:
        found = lookup(agent)
        return None if found is None else (found.version, found.workflow)

    assert template.workflow is not None
    problems = agent_problems(template.workflow, known, name)
    if problems:
        raise TemplateValidationError(f"template {name!r}", problems)


def resolve(name: str, lookup: Lookup) -> AgentTemplate:
    """Resolve template `name` and its ancestors into one validated template."""
    chain: list[str] = []
    documents: list[AgentTemplate] = []
    current: str | None = name
    while current is not None:
        if current in chain:
            raise InheritanceCycle((*chain, current))
        template = lookup(current)
        if template is None:
            raise TemplateNotFound(current, tuple(chain))
        chain.append(current)
        documents.append(template)
        current = template.extends

    merged: dict[str, Any] = {}
    for template in reversed(documents):  # root ancestor first
        own = written_fields(template)
        removals = own.pop("$remove", {})
        if removals:
            merged = copy.deepcopy(merged)  # never mutate a parent's structures
            apply_removals(merged, removals, f"template {template.name!r}")
        for whole in ("workflow", "output_schema"):  # replaced whole, never merged
            if whole in own:
                merged.pop(whole, None)
        merged = merge(merged, own)

    merged["name"] = name
    merged["extends"] = documents[0].extends
    metadata = {k: v for k, v in merged.get("metadata", {}).items() if k not in _COMPUTED_METADATA}
    metadata["lineage"] = chain
    merged["metadata"] = metadata
    resolved = parse_template(merged, f"template {name!r} (resolved)")
    if resolved.workflow is not None:
        check_step_agents(name, resolved, lookup)
    # Hash the validated model's dump so defaults filled in by the model are part of the content.
    document = resolved.model_dump(mode="json", by_alias=True, exclude={"remove"})
    metadata["hash"] = content_hash(document)
    return resolved.model_copy(update={"metadata": metadata})
