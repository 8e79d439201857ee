"""The docs are true: every hook is documented, every relative link leads to a file in the clone."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

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


# --- links --------------------------------------------------------------------------------------

ROOT = DOCS.parent
FENCED = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def relative_links(page: Path) -> list[str]:
    """The targets of the Markdown links in `page` that point into the repository."""
    text = FENCED.sub("", page.read_text(encoding="utf-8"))
    targets = [m.group(1) for m in LINK.finditer(text)]
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:|^#", t, re.IGNORECASE)]


def doc_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def test_the_readme_links_the_architecture_page() -> None:
    assert "docs/architecture.md" in relative_links(ROOT / "README.md")


def named_pages(page: Path) -> list[str]:
    """Code spans that name a Markdown file by a path (`docs/x.md`, `../notes/y.md`)."""
    text = FENCED.sub("", page.read_text(encoding="utf-8"))
    return re.findall(r"`([\w.-]*/[\w./-]*\.md)`", text)


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: p.name)
def test_every_relative_link_points_into_the_clone(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path = (page.parent / unquote(target.split("#", 1)[0])).resolve()
        if not path.is_relative_to(ROOT) or not path.exists():
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: p.name)
def test_every_page_named_by_path_is_in_the_clone(page: Path) -> None:
    missing = [name for name in named_pages(page) if not (ROOT / name).is_file()]
    assert missing == []
