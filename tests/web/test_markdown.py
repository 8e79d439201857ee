"""The README renderer: a useful subset of Markdown, and nothing a README can turn into script."""

from __future__ import annotations

import pytest

from marketplace.server.web.markdown import render_markdown


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
    html = str(render_markdown(text))
    assert (
        "<p>Some <strong>bold</strong> and <em>italic</em> and <em>also</em> text "
        "continued here.</p>"
    ) in html
    assert "<ul><li>one</li><li>two with <code>code</code></li></ul>" in html
    assert "<ol><li>first</li><li>second</li></ol>" in html
    code = "def f(x):\n    return x &lt; 1 and &#39;**not bold**&#39;"
    assert f"<pre><code>{code}</code></pre>" in html
    assert "<blockquote><p>quoted</p></blockquote>" in html
    assert "<hr>" in html


def test_http_links_get_nofollow_and_other_schemes_stay_text() -> None:
    html = str(render_markdown(
        "[docs](https://example.org/a?b=1&c=2) [js](javascript:alert(1)) "
        "[data](data:text/html;base64,PHNjcmlwdD4=) [rel](/local)"
    ))
    assert ('<a href="https://example.org/a?b=1&amp;c=2" rel="nofollow noopener noreferrer">'
            "docs</a>") in html
    assert "href" not in html.replace('href="https://example.org/a?b=1&amp;c=2"', "")
    assert "javascript:alert" in html  # shown as text, not as a link


@pytest.mark.parametrize(
    "payload",
    [
        "<script>window.__pwned = 1</script>",
        '<img src=x onerror="window.__pwned=1">',
        "<svg/onload=alert(1)>",
        '[x](https://a.example/"onmouseover="alert(1))',
        "[x](https://a.example/ onmouseover=alert(1))",
        "`<script>alert(1)</script>`",
        "<a href='javascript:alert(1)'>click</a>",
        "**<iframe src=//evil.example>**",
    ],
)
def test_raw_html_and_attribute_breakouts_are_inert(payload: str) -> None:
    html = str(render_markdown(payload))
    assert "<script" not in html
    assert "<img" not in html and "<svg" not in html and "<iframe" not in html
    assert "onerror=" not in html.replace("onerror=&#34;", "")  # only as escaped text
    # No tag carries an event handler attribute: every '<' left is one of our fixed tags.
    for chunk in html.split("<")[1:]:
        tag = chunk.split(">")[0]
        assert " on" not in tag, tag


def test_unclosed_fence_still_renders_as_escaped_code() -> None:
    assert str(render_markdown("```\n<b>x</b>")) == "<pre><code>&lt;b&gt;x&lt;/b&gt;</code></pre>"


def test_empty_readme_renders_nothing() -> None:
    assert str(render_markdown("")) == ""
