"""Render a package README (CommonMark + GitHub tables) to HTML that cannot carry script.

Two walls, each enough on its own:

1. `markdown-it-py` parses the README with raw HTML turned off, so `<script>`, `<img onerror>`,
   `<iframe>` and the like in a README come out as escaped text, as on a plain-text viewer.
   Links and autolinks are kept only when their (decoded, normalized) target starts with
   `http://`, `https://`, `mailto:` or `#`; any other link (`javascript:`, `data:`,
   `vbscript:`, relative paths into this site, in any case, entity-encoded or not) stays
   visible as the literal Markdown text.
2. `nh3` (the Ammonia sanitizer) then rebuilds the HTML from an explicit allow-list: the tags in
   `ALLOWED_TAGS`, the attributes in `ALLOWED_ATTRIBUTES`, the classes in `ALLOWED_CLASSES`,
   URLs only with the schemes above (relative URLs only as `#fragment`), and every link gets
   `rel="nofollow noopener noreferrer"`. No `style`, no `id`, no event handler survives.

Images are never loaded: `![alt](https://...)` renders as a link to the image labelled
"image: alt" (inside a link, as the label alone). The site's Content-Security-Policy allows
images only from this origin, and fetching a stranger's image would tell a third party who
reads which README; showing a link keeps both the policy and the visitor's privacy.

Table column alignment becomes an `align-left|center|right` class (the CSP forbids `style`
attributes). README headings are shifted down two levels (`#` becomes `<h3>`, capped at `<h6>`)
because the package page owns the single `<h1>` and the README sits under its own `<h2>`.

Bounds: a README is cut at `MAX_README_CHARS` characters (the page then says so) and block
nesting at `MAX_NESTING` levels (deeper content is dropped). Parsing costs up to ~10 µs a
character on hostile input, so the cut keeps a README's first rendering around a second at worst;
results are cached per README text, so later views of the page cost a dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markupsafe import Markup

MAX_README_CHARS = 100_000
MAX_NESTING = 20
LINK_REL = "nofollow noopener noreferrer"
_LINK_PREFIXES = ("http://", "https://", "mailto:", "#")
_IMAGE_PREFIXES = ("http://", "https://")
_ALIGN_CLASSES = frozenset({"align-left", "align-center", "align-right"})

ALLOWED_TAGS = frozenset({
    "h3", "h4", "h5", "h6", "p", "br", "hr", "blockquote", "pre", "code", "strong", "em", "a",
    "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td",
})
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {"a": {"href", "title"}, "ol": {"start"}}
ALLOWED_CLASSES: dict[str, set[str]] = {
    "th": set(_ALIGN_CLASSES), "td": set(_ALIGN_CLASSES), "a": {"readme-image"},
}


class _ReadmeMarkdown(MarkdownIt):
    """CommonMark with tables, no raw HTML, and links only to the allowed schemes."""

    def validateLink(self, url: str) -> bool:
        return url.lower().startswith(_LINK_PREFIXES)


def _inside_link(tokens: Sequence[Token], idx: int) -> bool:
    depth = 0
    for token in tokens[:idx]:
        depth += {"link_open": 1, "link_close": -1}.get(token.type, 0)
    return depth > 0


def _image_as_link(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: Any, env: Any
) -> str:
    token = tokens[idx]
    alt = renderer.renderInlineAsText(token.children, options, env)
    label = escapeHtml(f"image: {alt}" if alt else "image")
    src = str(token.attrGet("src") or "")
    if _inside_link(tokens, idx) or not src.lower().startswith(_IMAGE_PREFIXES):
        return label
    return f'<a class="readme-image" href="{escapeHtml(src)}">{label}</a>'


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = _ReadmeMarkdown("commonmark", {"html": False, "maxNesting": MAX_NESTING})
    md.enable("table")
    md.add_render_rule("image", _image_as_link)
    return md


@lru_cache(maxsize=1)
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        clean_content_tags={"script", "style"},
        attributes=ALLOWED_ATTRIBUTES,
        allowed_classes=ALLOWED_CLASSES,
        url_schemes={"http", "https", "mailto"},
        url_relative=lambda url: url if url.startswith("#") else None,
        link_rel=LINK_REL,
        strip_comments=True,
    )


def sanitize(html: str) -> str:
    """`html` rebuilt from the allow-lists (the renderer's second wall, usable alone)."""
    return _cleaner().clean(html)


def _adjust(tokens: list[Token]) -> None:
    """Shift headings below the page outline; turn table alignment into classes."""
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1]) + 2, 6)}"
        elif token.type in ("th_open", "td_open"):
            style = str(token.attrGet("style") or "")
            token.attrs.pop("style", None)
            if style.startswith("text-align:"):
                token.attrSet("class", f"align-{style.removeprefix('text-align:')}")


def _render(text: str) -> str:
    md = _parser()
    env: dict[str, Any] = {}
    tokens = md.parse(text[:MAX_README_CHARS], env)
    _adjust(tokens)
    html = sanitize(md.renderer.render(tokens, md.options, env)).strip()
    if len(text) > MAX_README_CHARS:
        html += f'\n<p><em>README cut at {MAX_README_CHARS:,} characters.</em></p>'
    return html


@lru_cache(maxsize=256)
def render_markdown(text: str) -> Markup:
    """The README as safe HTML. Cached: a package page re-renders the same README often."""
    return Markup(_render(text))  # sanitized by nh3 in _render
