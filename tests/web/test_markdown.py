"""The README renderer: CommonMark with tables, and nothing a README can turn into script.

Every hostile case is checked on the parsed output (`_elements`): only allow-listed tags, no
event handler or `style` attribute, and every `href` an http(s)/mailto URL or a `#fragment`.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from marketplace.client.scaffold import scaffold
from marketplace.server.web.markdown import (
    ALLOWED_TAGS,
    LINK_REL,
    MAX_NESTING,
    MAX_README_CHARS,
    render_markdown,
    sanitize,
)
from tests.web.conftest import Seeder

Element = tuple[str, dict[str, str]]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))


def _elements(html: str) -> list[Element]:
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector.elements


def _flat(html: object) -> str:
    """The HTML without the newlines markdown-it puts before tags."""
    return re.sub(r"\n+(?=<)", "", str(html))


def assert_inert(html: str) -> None:
    for tag, attrs in _elements(html):
        assert tag in ALLOWED_TAGS, tag
        assert not any(name.startswith("on") or name == "style" for name in attrs), (tag, attrs)
        href = attrs.get("href")
        if href is not None:
            assert href.lower().startswith(("http://", "https://", "mailto:", "#")), href
            assert attrs["rel"] == LINK_REL


def hrefs(html: str) -> list[str]:
    return [attrs["href"] for tag, attrs in _elements(html) if tag == "a" and "href" in attrs]


def test_headings_are_shifted_below_the_page_outline() -> None:
    html = str(render_markdown("# Title\n\n## Usage\n\n###### deep"))
    assert "<h3>Title</h3>" in html
    assert "<h4>Usage</h4>" in html
    assert "<h6>deep</h6>" in html


def test_paragraphs_lists_code_and_emphasis() -> None:
    text = (
        "Some **bold** and *italic* and _also_ text\ncontinued here.\n\n"
        "- one\n- two with `code`\n\n1. first\n2. second\n\n"
        "```python\ndef f(x):\n    return x < 1 and '**not bold**'\n```\n\n> quoted\n\n---\n"
    )
    html = _flat(render_markdown(text))
    assert (
        "<p>Some <strong>bold</strong> and <em>italic</em> and <em>also</em> text\n"
        "continued here.</p>"
    ) in html
    assert "<ul><li>one</li><li>two with <code>code</code></li></ul>" in html
    assert "<ol><li>first</li><li>second</li></ol>" in html
    assert "<pre><code>def f(x):\n    return x &lt; 1 and '**not bold**'</code></pre>" in html
    assert "<blockquote><p>quoted</p></blockquote>" in html
    assert "<hr>" in html


def test_nested_lists_keep_their_structure() -> None:
    html = _flat(render_markdown("- fruit\n  - apple\n    1. green\n    2. red\n- veg\n"))
    assert html == (
        "<ul><li>fruit<ul><li>apple<ol><li>green</li><li>red</li></ol></li></ul></li>"
        "<li>veg</li></ul>"
    )


def test_tables_render_with_alignment_as_classes() -> None:
    html = _flat(render_markdown("| name | stars |\n|:-----|------:|\n| a&b | 5 |\n"))
    assert "<table><thead><tr><th class=\"align-left\">name</th>" in html
    assert '<td class="align-right">5</td>' in html
    assert "<td class=\"align-left\">a&amp;b</td>" in html
    assert "style" not in html


def test_indented_and_fenced_code_are_escaped_code_blocks() -> None:
    html = _flat(render_markdown("Run:\n\n    agentfactory build .  # <b>\n\n~~~\n<i>x</i>\n~~~\n"))
    assert "<pre><code>agentfactory build .  # &lt;b&gt;</code></pre>" in html
    assert "<pre><code>&lt;i&gt;x&lt;/i&gt;</code></pre>" in html


def test_the_readme_written_by_init_keeps_its_sections_and_commands(tmp_path: Path) -> None:
    scaffold(tmp_path / "wc", "ada/wc", summary="Counts words.")
    html = _flat(render_markdown((tmp_path / "wc" / "README.md").read_text(encoding="utf-8")))
    assert "<h3>ada/wc</h3>" in html and "<h4>Develop</h4>" in html
    assert html.count("<pre><code") >= 3  # input and output samples, the commands
    code = "".join(re.findall(r"<pre><code[^>]*>(.*?)</code></pre>", html, re.S))
    assert "agentfactory build ." in code and "agentfactory publish ." in code


def test_images_are_links_never_loaded() -> None:
    html = str(render_markdown(
        "![diagram *one*](https://img.example/d.png) "
        "[![CI](https://ci.example/badge.svg)](https://ci.example/run) "
        "![x](data:image/png;base64,iVBORw0KGgo=) ![y](javascript:alert(1))"
    ))
    assert "<img" not in html
    assert (
        f'<a class="readme-image" href="https://img.example/d.png" rel="{LINK_REL}">'
        "image: diagram one</a>"
    ) in html
    # A badge inside a link stays one link (to the link's target), labelled by the alt text.
    assert f'<a href="https://ci.example/run" rel="{LINK_REL}">image: CI</a>' in html
    assert hrefs(html) == ["https://img.example/d.png", "https://ci.example/run"]
    assert_inert(html)


def test_autolinks_to_safe_schemes_only() -> None:
    html = str(render_markdown(
        "<https://example.org/x> <ada@example.org> <javascript:alert(1)> <ftp://x.example/>"
    ))
    assert hrefs(html) == ["https://example.org/x", "mailto:ada@example.org"]
    assert "&lt;javascript:alert(1)&gt;" in html
    assert_inert(html)


def test_http_links_get_nofollow_and_other_schemes_stay_text() -> None:
    html = str(render_markdown(
        "[docs](https://example.org/a?b=1&c=2) [js](javascript:alert(1)) "
        "[data](data:text/html;base64,PHNjcmlwdD4=) [rel](/local) [top](#usage)"
    ))
    assert (f'<a href="https://example.org/a?b=1&amp;c=2" rel="{LINK_REL}">docs</a>') in html
    assert hrefs(html) == ["https://example.org/a?b=1&c=2", "#usage"]
    assert "javascript:alert" in html  # shown as text, not as a link


@pytest.mark.parametrize(
    "target",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "&#106;avascript:alert(1)",
        "&#x6A;&#x61;vascript:alert(1)",
        "java&#x09;script:alert(1)",
        "<java script:alert(1)>",
        "<java\tscript:alert(1)>",
        "javascript&colon;alert(1)",
        "vbscript:msgbox(1)",
        "VBScript:msgbox(1)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "data:image/svg+xml,<svg/onload=alert(1)>",
        "//evil.example/x",
        "/api/v1/publishers/me",
        "file:///etc/passwd",
    ],
)
def test_hostile_link_and_image_targets_never_become_urls(target: str) -> None:
    html = str(render_markdown(f"[link]({target}) ![pic]({target})\n\n[ref]: {target}\n\n[ref]"))
    assert hrefs(html) == []
    assert "<img" not in html
    assert_inert(html)


@pytest.mark.parametrize(
    "payload",
    [
        "<script>window.__pwned = 1</script>",
        '<img src=x onerror="window.__pwned=1">',
        "<svg/onload=alert(1)>",
        "<svg><script>alert(1)</script></svg>",
        '[x](https://a.example/"onmouseover="alert(1))',
        "[x](https://a.example/ onmouseover=alert(1))",
        "`<script>alert(1)</script>`",
        "<a href='javascript:alert(1)'>click</a>",
        "**<iframe src=//evil.example>**",
        "<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>",
        '<p style="position:fixed;inset:0;background:url(https://evil.example/t)">x</p>',
        "<details open ontoggle=alert(1)><summary>x</summary></details>",
        "<math><mi xlink:href=\"javascript:alert(1)\">x</mi></math>",
        "<!-- <script>alert(1)</script> -->",
        "<div>\n\n*md inside*\n\n</div>",
    ],
)
def test_raw_html_and_attribute_breakouts_are_inert(payload: str) -> None:
    html = str(render_markdown(payload))
    assert_inert(html)
    if payload.startswith("<") and not payload.startswith("<div>"):
        assert html.startswith("<p>&lt;")  # raw HTML is shown as text


def test_the_sanitizer_alone_strips_what_the_allow_list_does_not_name() -> None:
    html = sanitize(
        '<h1 id="x" onclick="a()">t</h1><a href="JAVASCRIPT:alert(1)" style="x">j</a>'
        '<a href="/local">l</a><img src="https://x.example/i.png"><script>bad()</script>'
        '<td class="align-right evil">c</td>'
    )
    assert html == f't<a rel="{LINK_REL}">j</a><a rel="{LINK_REL}">l</a>c'


def test_huge_and_deeply_nested_readmes_are_bounded() -> None:
    deep_quotes = str(render_markdown(">" * 5000 + " deep"))
    assert deep_quotes.count("<blockquote>") <= MAX_NESTING
    deep_list = str(render_markdown("".join("  " * i + "- item\n" for i in range(300))))
    assert deep_list.count("<ul>") <= MAX_NESTING
    huge = "word " * (MAX_README_CHARS // 5 + 1000)
    html = str(render_markdown(huge))
    assert len(html) < MAX_README_CHARS + 200
    assert html.endswith(f"<p><em>README cut at {MAX_README_CHARS:,} characters.</em></p>")
    assert_inert(str(render_markdown("[" * 20_000 + "x" + "](https://a.example/)" * 200)))


def test_unclosed_fence_still_renders_as_escaped_code() -> None:
    assert str(render_markdown("```\n<b>x</b>")) == "<pre><code>&lt;b&gt;x&lt;/b&gt;</code></pre>"


def test_empty_readme_renders_nothing() -> None:
    assert str(render_markdown("")) == ""


def test_the_package_page_shows_a_rich_readme_under_the_strict_csp(
    client: TestClient, seed: Seeder
) -> None:
    pub = seed.publisher("ada", "ada")
    readme = (
        "# Words\n\n| in | out |\n|---|---|\n| text | counts |\n\n"
        "- a\n  - nested\n\n![shot](https://img.example/s.png)\n"
    )
    seed.package(pub, "ada/words", readme=readme)
    page = client.get("/packages/ada/words")
    assert page.status_code == 200
    html = _flat(page.text)
    assert "<table><thead><tr><th>in</th><th>out</th></tr></thead>" in html
    assert "<ul><li>a<ul><li>nested</li></ul></li></ul>" in html
    assert 'class="readme-image" href="https://img.example/s.png"' in html
    assert "img-src 'self' data:" in page.headers["content-security-policy"]
