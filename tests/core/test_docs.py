"""Every hook is documented."""

from __future__ import annotations

import inspect
from pathlib import Path

import core.hookspecs

DOCS = Path(__file__).resolve().parents[2] / "docs"


def hook_names() -> list[str]:
    return [
        name
        for name, value in inspect.getmembers(core.hookspecs, inspect.isfunction)
        if name.startswith("agentfactory_")
    ]


def test_there_are_hooks_to_document() -> None:
    assert "agentfactory_process" in hook_names()


def test_every_hook_has_a_section_in_docs_plugins() -> None:
    text = (DOCS / "plugins.md").read_text(encoding="utf-8")
    missing = [name for name in hook_names() if f"### `{name}(" not in text]
    assert missing == []


def test_templates_doc_explains_removal() -> None:
    assert '"$remove"' in (DOCS / "templates.md").read_text(encoding="utf-8")
