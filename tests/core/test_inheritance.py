"""Resolving `extends`: deep chains, merge rules, `$remove`, cycles, missing parents, hashes."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from core.errors import InheritanceCycle, TemplateNotFound, TemplateValidationError
from core.inheritance import resolve
from core.loader import parse_template
from core.template import AgentTemplate
from tests.core.conftest import template_doc


def lookup_of(*docs: dict[str, Any]) -> Any:
    templates = {d["name"]: parse_template(d, d["name"]) for d in docs}
    return templates.get


def chain() -> list[dict[str, Any]]:
    return [
        template_doc(
            "root",
            description="root",
            capabilities=["read"],
            tools=["text_reader"],
            model={"provider": "local", "name": "small", "parameters": {"temperature": 0.0}},
            prompts={"system": "root system", "task": "root task"},
            parameters={"limits": {"words": 100, "lines": 10}, "lang": "en"},
        ),
        template_doc(
            "middle",
            extends="root",
            capabilities=["summarize", "read"],
            parameters={"limits": {"words": 200}},
        ),
        template_doc(
            "leaf",
            extends="middle",
            description="leaf",
            model={"parameters": {"top_p": 0.9}},
            prompts={"task": "leaf task"},
        ),
        template_doc("deepest", extends="leaf", tools=["regex_search"], version="2.0"),
    ]


def test_four_level_chain_merges_every_field() -> None:
    resolved = resolve("deepest", lookup_of(*chain()))
    assert resolved.version == "2.0"
    assert resolved.description == "leaf"  # nearest ancestor that wrote it
    assert resolved.capabilities == ["read", "summarize"]  # ordered union
    assert resolved.tools == ["text_reader", "regex_search"]
    assert resolved.model.name == "small"
    assert resolved.model.parameters == {"temperature": 0.0, "top_p": 0.9}
    assert resolved.prompts == {"system": "root system", "task": "leaf task"}
    assert resolved.parameters == {"limits": {"words": 200, "lines": 10}, "lang": "en"}
    assert resolved.extends == "leaf"
    assert resolved.lineage == ["deepest", "leaf", "middle", "root"]


def test_child_that_omits_a_field_inherits_it_rather_than_resetting_it() -> None:
    resolved = resolve("middle", lookup_of(*chain()))
    assert resolved.tools == ["text_reader"]
    assert resolved.prompts["system"] == "root system"


def test_remove_drops_list_items_and_dict_keys_before_merging() -> None:
    docs = chain()
    docs.append(
        template_doc(
            "trimmed",
            extends="leaf",
            **{
                "$remove": {
                    "capabilities": ["read"],
                    "prompts": ["system"],
                    "model.parameters": ["temperature"],
                    "parameters": ["lang"],
                }
            },
            capabilities=["extract"],
        )
    )
    resolved = resolve("trimmed", lookup_of(*docs))
    assert resolved.capabilities == ["summarize", "extract"]
    assert resolved.prompts == {"task": "leaf task"}
    assert resolved.model.parameters == {"top_p": 0.9}
    assert "lang" not in resolved.parameters
    # the parent is untouched by its child's removals
    assert resolve("leaf", lookup_of(*docs)).capabilities == ["read", "summarize"]


def test_removing_what_is_not_inherited_is_an_error_naming_it() -> None:
    docs = [*chain(), template_doc("typo", extends="root", **{"$remove": {"tools": ["shel"]}})]
    with pytest.raises(TemplateValidationError) as info:
        resolve("typo", lookup_of(*docs))
    assert info.value.errors == [("$remove.tools", "'shel' is not inherited, nothing to remove")]
    assert "typo" in str(info.value)


def test_cycle_names_the_whole_chain() -> None:
    docs = [
        template_doc("a", extends="b"),
        template_doc("b", extends="c"),
        template_doc("c", extends="a"),
    ]
    with pytest.raises(InheritanceCycle) as info:
        resolve("a", lookup_of(*docs))
    assert info.value.chain == ("a", "b", "c", "a")
    assert "a -> b -> c -> a" in str(info.value)


def test_self_extension_is_a_cycle() -> None:
    with pytest.raises(InheritanceCycle, match="me -> me"):
        resolve("me", lookup_of(template_doc("me", extends="me")))


def test_missing_parent_names_the_chain_that_needed_it() -> None:
    docs = [template_doc("child", extends="parent"), template_doc("parent", extends="ghost")]
    with pytest.raises(TemplateNotFound) as info:
        resolve("child", lookup_of(*docs))
    assert info.value.name == "ghost"
    assert str(info.value) == "template 'ghost' not found (required by child -> parent)"


def test_merged_result_is_validated_as_a_whole() -> None:
    docs = [template_doc("p", model={"name": "m"}), template_doc("c", extends="p", version="x!")]
    with pytest.raises(TemplateValidationError, match="version"):
        resolve("c", lookup_of(*docs))


def test_hash_depends_on_content_not_key_order() -> None:
    a = template_doc("h", tools=["x"], prompts={"a": "1", "b": "2"})
    b = dict(reversed(list(a.items())))
    b["prompts"] = {"b": "2", "a": "1"}
    first, second = resolve("h", lookup_of(a)), resolve("h", lookup_of(b))
    assert first.hash == second.hash
    assert len(first.hash) == 64
    changed = resolve("h", lookup_of({**a, "tools": ["y"]}))
    assert changed.hash != first.hash


def test_resolved_templates_are_frozen() -> None:
    resolved = resolve("root", lookup_of(*chain()))
    with pytest.raises(ValidationError, match="frozen"):
        resolved.name = "other"
    assert isinstance(resolved, AgentTemplate)
