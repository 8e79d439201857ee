"""The template `hooks` field, read by the built-in task guard (`hooks.task_guard.max_chars`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.config import FactorySettings
from core.errors import AgentInputError, TemplateValidationError, TemplateVetoed
from core.factory import AgentFactory
from core.loader import parse_template
from core.template import AgentTemplate
from tests.marketplace.cli_runner import run_cli


def factory_with(tmp_path: Path, **template: Any) -> AgentFactory:
    document = {"name": "guarded", "version": "1.0", "implementation": "base_agent", **template}
    (tmp_path / "guarded.json").write_text(json.dumps(document))
    return AgentFactory(FactorySettings(template_dirs=[tmp_path]))


def test_documentaliste_refuses_a_document_over_its_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.md"
    big.write_text("word " * 200_001)  # 1,000,005 characters

    run = run_cli({}, "run", "documentaliste", "--input", str(big)).failed()

    assert run.err.strip() == (
        "error: task field 'text' has 1,000,005 characters; agent 'documentaliste' accepts at "
        "most 1,000,000 (hooks.task_guard.max_chars of its template)"
    )


def test_the_guard_names_a_nested_field(tmp_path: Path) -> None:
    with factory_with(tmp_path, hooks={"task_guard": {"max_chars": 5}}) as factory:
        agent = factory.create_agent("guarded")
        assert agent.process({"text": "short"})["text"] == "short"
        with pytest.raises(AgentInputError, match=r"task field 'notes\[1\]\.body' has 6 "):
            agent.process({"text": "ok", "notes": ["fine", {"body": "sixsix"}]})


def test_templates_without_the_guard_take_any_length(tmp_path: Path) -> None:
    with factory_with(tmp_path) as factory:
        agent = factory.create_agent("guarded", {"max_chars": 10**7})
        assert len(agent.process({"text": "x" * 2_000_000})["text"]) == 2_000_000


@pytest.mark.parametrize(("settings", "reason"), [
    ({"max_chars": "lots"}, "hooks.task_guard.max_chars must be a positive integer, not 'lots'"),
    ({"max_chars": 0}, "hooks.task_guard.max_chars must be a positive integer, not 0"),
    ({"max_char": 10}, "hooks.task_guard.max_char: unknown setting (known: max_chars)"),
])  # fmt: skip
def test_a_mistyped_guard_refuses_the_template_at_load(
    tmp_path: Path, settings: dict[str, Any], reason: str
) -> None:
    with (
        factory_with(tmp_path, hooks={"task_guard": settings}) as factory,
        pytest.raises(TemplateVetoed) as refused,
    ):
        factory.create_agent("guarded")
    assert refused.value.reasons == [reason]


def test_each_hooks_entry_is_an_object_of_settings() -> None:
    with pytest.raises(TemplateValidationError, match=r"hooks\.task_guard: .*dictionary"):
        parse_template({"name": "x", "version": "1", "hooks": {"task_guard": 5}}, "x.json")
    assert AgentTemplate(name="x", version="1", hooks={"anything": {"k": [1]}}).hooks
