"""Render a package README (Markdown) to HTML that cannot carry script.

Invariant: every character of the input is HTML-escaped *before* any markup is produced, and the
only tags ever emitted are the fixed ones written in this module (h3-h6, p, ul, ol, li, pre, code,
blockquote, hr, strong, em, a). No attribute value comes from the input except a link's `href`,
and that only when it is an absolute http(s) URL; since the text was escaped first it contains
no `"`, `'`, `<` or `>` and cannot leave the attribute. Raw HTML in a README therefore shows up
as text, and `javascript:`/`data:` links show up as plain text too.

README headings are shifted down two levels (`#` becomes `<h3>`) because the package page owns the
page's single `<h1>` and the README sits under its own `<h2>`; screen-reader users navigate by
that outline.

The subset is deliberately small: ATX headings, paragraphs, `-`/`*`/`+` and `1.` lists (one
level), fenced code blocks, blockquotes, horizontal rules, inline code, `**strong**`, `*em*` /
`_em_` and `[text](http://...)` links. Anything else renders as escaped text.
"""

from __future__ import annotations

import re
from functools import lru_cache

from markupsafe import Markup, escape

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^\s{0,3}[-*+]\s+(.*)$")
_ORDERED = re.compile(r"^\s{0,3}\d{1,9}[.)]\s+(.*)$")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_QUOTE = re.compile(r"^\s{0,3}&gt;\s?(.*)$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")

# Inline patterns run on already-escaped text, so `&gt;` etc. are literal there.
_INLINE = re.compile(
    r"(?P<code>`+)(?P<code_body>.+?)(?P=code)"
    r"|\[(?P<link_text>[^\[\]]+)\]\((?P<link_url>[^()\s]+)\)"
    r"|\*\*(?P<strong>[^*]+?)\*\*"
    r"|(?<![\w*])\*(?P<em>[^*\s][^*]*?)\*(?![\w*])"
    r"|(?<![\w_])_(?P<em2>[^_\s][^_]*?)_(?![\w_])"
)
_SAFE_URL = re.compile(r"^https?://[^\s]+$", re.IGNORECASE)

MAX_README_CHARS = 200_000


def _inline(escaped: str, allow_links: bool = True) -> str:
    """Apply the inline subset to text that is already HTML-escaped."""

    def replace(match: re.Match[str]) -> str:
        if match["code"]:
            return f"<code>{match['code_body'].strip()}</code>"
        if match["link_text"] is not None:
            text = _inline(match["link_text"], allow_links=False)
            url = match["link_url"]
            if allow_links and _SAFE_URL.match(url):
                return f'<a href="{url}" rel="nofollow noopener noreferrer">{text}</a>'
            return f"{text} ({url})"
        if match["strong"] is not None:
            return f"<strong>{_inline(match['strong'], allow_links)}</strong>"
        body = match["em"] if match["em"] is not None else match["em2"]
        return f"<em>{_inline(body, allow_links)}</em>"

    return _INLINE.sub(replace, escaped)


class _Blocks:
    """Accumulates output blocks; one open paragraph, list or quote at a time."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.para: list[str] = []
        self.list_tag: str | None = None
        self.items: list[str] = []
        self.quote: list[str] = []

    def flush(self) -> None:
        if self.para:
            self.out.append(f"<p>{_inline(' '.join(self.para))}</p>")
            self.para = []
        if self.list_tag:
            items = "".join(f"<li>{_inline(item)}</li>" for item in self.items)
            self.out.append(f"<{self.list_tag}>{items}</{self.list_tag}>")
            self.list_tag, self.items = None, []
        if self.quote:
            self.out.append(f"<blockquote><p>{_inline(' '.join(self.quote))}</p></blockquote>")
            self.quote = []

    def item(self, tag: str, text: str) -> None:
        if self.list_tag != tag:
            self.flush()
            self.list_tag = tag
        self.items.append(text)


def _render(text: str) -> str:
    lines = str(escape(text[:MAX_README_CHARS].replace("\r\n", "\n"))).split("\n")
    blocks = _Blocks()
    fence: str | None = None
    code: list[str] = []
    for line in lines:
        if fence is not None:
            if line.strip().startswith(fence):
                blocks.out.append(f"<pre><code>{chr(10).join(code)}</code></pre>")
                fence, code = None, []
            else:
                code.append(line)
            continue
        if match := _FENCE.match(line):
            blocks.flush()
            fence = match.group(1)
            continue
        if not line.strip():
            blocks.flush()
            continue
        if match := _HEADING.match(line):
            blocks.flush()
            level = min(len(match.group(1)) + 2, 6)
            blocks.out.append(f"<h{level}>{_inline(match.group(2))}</h{level}>")
        elif _RULE.match(line):
            blocks.flush()
            blocks.out.append("<hr>")
        elif match := _BULLET.match(line):
            blocks.item("ul", match.group(1))
        elif match := _ORDERED.match(line):
            blocks.item("ol", match.group(1))
        elif match := _QUOTE.match(line):
            if not blocks.quote:
                blocks.flush()
            blocks.quote.append(match.group(1))
        elif blocks.list_tag and line.startswith((" ", "\t")):
            blocks.items[-1] += " " + line.strip()  # continuation of the last list item
        else:
            if blocks.list_tag or blocks.quote:
                blocks.flush()
            blocks.para.append(line.strip())
    if fence is not None:  # an unclosed fence still renders its content as code
        blocks.out.append(f"<pre><code>{chr(10).join(code)}</code></pre>")
    blocks.flush()
    return "\n".join(blocks.out)


@lru_cache(maxsize=512)
def render_markdown(text: str) -> Markup:
    """The README as safe HTML. Cached: a package page re-renders the same README often."""
    return Markup(_render(text))
