"""Search queries from strangers: bounded, never read as query syntax, never a wildcard.

Every form runs against full-text search (FTS5 on SQLite, tsquery on PostgreSQL) and the LIKE
fallback: a query past the bounds is an `InvalidQuery` quoting only its start; operators,
quotes, `*`, `NEAR` and LIKE wildcards in a query or a filter are plain text.
"""

from __future__ import annotations

import pytest

from registry import Registry
from registry.errors import InvalidQuery
from registry.search import MAX_FILTER_CHARS, MAX_QUERY_CHARS, MAX_QUERY_WORDS
from tests.registry.factories import make_publisher, publish


@pytest.fixture(params=[True, False], ids=["fts", "like"])
def catalog(registry: Registry, request: pytest.FixtureRequest) -> Registry:
    acme = make_publisher(registry, "acme")
    publish(registry, acme, "acme/summarizer", summary="Summarizes long text",
            capabilities=["summarize"], tools=["json_parser"])
    publish(registry, acme, "acme/translator", summary="Translates text",
            capabilities=["translate"])
    registry.fts = registry.fts and request.param
    return registry


@pytest.mark.parametrize("query", [
    "a" * (MAX_QUERY_CHARS + 1),
    " ".join(f"w{k}" for k in range(MAX_QUERY_WORDS + 1)),
    " ".join(f"w{k}" for k in range(5000)),
])
def test_queries_past_the_bounds_are_refused_quoting_only_their_start(
    catalog: Registry, query: str
) -> None:
    with pytest.raises(InvalidQuery) as refused:
        catalog.search(query)
    assert refused.value.field == "q"
    assert len(str(refused.value)) < 200


def test_repeated_words_count_once(catalog: Registry) -> None:
    query = " ".join(["summarizes"] * 20)  # 20 words, 1 distinct
    assert [p.name for p in catalog.search(query).items] == ["acme/summarizer"]


@pytest.mark.parametrize("query", [
    'NEAR(summarizes text, 1)', '"summarizes" OR "nothing"', "summarizes*", "^summarizes",
    'summary: text', "summarizes AND NOT translates", '"' * 50, "*" * 50, "(((", "-text",
])
def test_query_syntax_is_plain_text(catalog: Registry, query: str) -> None:
    catalog.search(query)  # no syntax error from the database: every form is answered


def test_operators_are_words_not_operators(catalog: Registry) -> None:
    # "OR" is a word that must match too (all words must), not a union.
    assert catalog.search("summarizes OR translates").total == 0
    assert catalog.search("NEAR summarizes").total == 0


@pytest.mark.parametrize("field", ["capability", "tool"])
@pytest.mark.parametrize("value", ["%", "_", "%a%", "s%", "\\", "json%parser", "json_parser_"])
def test_filters_never_become_wildcards(catalog: Registry, field: str, value: str) -> None:
    filters: dict[str, str | None] = {"capability": None, "tool": None, field: value}
    assert catalog.search(capability=filters["capability"], tool=filters["tool"]).total == 0


def test_an_exact_filter_still_matches_names_with_underscores(catalog: Registry) -> None:
    assert [p.name for p in catalog.search(tool="json_parser").items] == ["acme/summarizer"]


@pytest.mark.parametrize("field", ["capability", "tool"])
def test_over_long_filters_are_refused(catalog: Registry, field: str) -> None:
    with pytest.raises(InvalidQuery) as refused:
        long = "x" * (MAX_FILTER_CHARS + 1)
        catalog.search(capability=long if field == "capability" else None,
                       tool=long if field == "tool" else None)
    assert refused.value.field == field
