"""Search over packages: full text, filters, four sort orders, pagination.

The full-text index is part of the schema (revision 0001) and maintained by the database in
the same transaction as the change to a package row, so it never drifts from the table:
on SQLite the FTS5 table `package_fts` (rowid = package id, kept by triggers), on PostgreSQL
the generated `package.search_vector` column. Both hold the name, summary, keywords,
capabilities and template names of each package's latest release. Each query word matches as
a prefix and all words must match; relevance is BM25 (FTS5) or `ts_rank` (PostgreSQL), with
the name weighted highest. Without a full-text index (SQLite built without FTS5) the same
query runs as case-insensitive LIKE over the same fields, relevance then meaning "name matches
first". Rating order puts every rated package before every unrated one (an unrated package has
no evidence, so it must not borrow the prior's score and outrank a real 5), the rated ones by
the Bayesian average `(C*m + sum) / (C + n)`: the prior m is the mean of all ratings in the
registry, weighted as C votes (`prior_weight`, 5 by default); `DEFAULT_MEAN` stands in for m
only while nobody has rated anything, when it cannot change the order.

Bounds: no query can make the database work for long. A query is at most `MAX_QUERY_CHARS`
characters and `MAX_QUERY_WORDS` distinct words (more is an `InvalidQuery`, which quotes only
the start of the value); only runs of letters, digits and `_` reach the database, each quoted
as one FTS5 string or turned into a tsquery of letters and digits, so no FTS5 or tsquery syntax
(`NEAR`, `OR`, `*`, `^`, quotes, columns) from the user is ever read as an operator; LIKE
patterns (the capability and tool filters, and the fallback without FTS5) escape `%`, `_` and
the escape character, so user text never becomes a wildcard, and filters are at most
`MAX_FILTER_CHARS` long.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Text,
    and_,
    case,
    cast,
    column,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
    text,
)
from sqlmodel import Session, col

from registry.errors import InvalidQuery
from registry.models import Package, Publisher
from registry.names import normalize_part
from registry.schemas import PackageSummary, SearchPage, split_list

Sort = Literal["relevance", "rating", "downloads", "recent"]
SORTS: tuple[str, ...] = ("relevance", "rating", "downloads", "recent")
DEFAULT_MEAN = 3.0
MAX_PER_PAGE = 100
MAX_QUERY_CHARS = 256
MAX_QUERY_WORDS = 16
MAX_FILTER_CHARS = 64  # a capability or tool name (`ManifestLimits.capability_chars`)
_FTS = table("package_fts", column("rowid"))


def global_mean(session: Session) -> float:
    total, count = session.execute(
        select(func.coalesce(func.sum(Package.stars_sum), 0),
               func.coalesce(func.sum(Package.review_count), 0))
    ).one()
    return float(total) / float(count) if count else DEFAULT_MEAN


def bayesian(stars_sum: int, count: int, mean: float, weight: float) -> float:
    return (weight * mean + stars_sum) / (weight + count)


def _shown(value: str, most: int = 40) -> str:
    return value if len(value) <= most else value[: most - 1] + "…"


def _words(query: str) -> list[str]:
    """The query's distinct words, in order, within the bounds above."""
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidQuery("q", _shown(query), f"at most {MAX_QUERY_CHARS} characters, "
                           f"got {len(query)}")
    words = list(dict.fromkeys(re.findall(r"\w+", query.lower())))
    if len(words) > MAX_QUERY_WORDS:
        raise InvalidQuery("q", _shown(query), f"at most {MAX_QUERY_WORDS} distinct words, "
                           f"got {len(words)}")
    return words


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filter(field: str, value: str) -> str:
    """The LIKE pattern of a `|`-separated list field holding exactly `value`."""
    if len(value) > MAX_FILTER_CHARS:
        raise InvalidQuery(field, _shown(value), f"at most {MAX_FILTER_CHARS} characters, "
                           f"got {len(value)}")
    return f"%|{_like_escaped(value)}|%"


def _summary(row: Any, mean: float, weight: float) -> PackageSummary:
    return PackageSummary(
        name=row.name, summary=row.summary, publisher=row.publisher,
        latest_version=row.latest_version, keywords=split_list(row.keywords),
        capabilities=split_list(row.capabilities), tools=split_list(row.tools),
        templates=split_list(row.template_names), downloads=row.downloads,
        rating_count=row.review_count,
        rating_mean=row.stars_sum / row.review_count if row.review_count else None,
        rating_bayesian=bayesian(row.stars_sum, row.review_count, mean, weight),
        updated_at=row.updated_at,
    )


def search(
    session: Session, query: str = "", *, sort: str = "relevance", page: int = 1,
    per_page: int = 20, capability: str | None = None, tool: str | None = None,
    publisher: str | None = None, fts: bool = False, prior_weight: float = 5.0,
) -> SearchPage:
    if sort not in SORTS:
        raise InvalidQuery("sort", sort, f"use one of {', '.join(SORTS)}")
    page = max(1, page)
    per_page = max(1, min(MAX_PER_PAGE, per_page))
    words = _words(query)
    mean = global_mean(session)
    filters: list[ColumnElement[bool]] = []
    if capability:
        filters.append(col(Package.capabilities).like(_filter("capability", capability), "\\"))
    if tool:
        filters.append(col(Package.tools).like(_filter("tool", tool), "\\"))
    if publisher:
        filters.append(col(Publisher.normalized_name) == normalize_part(publisher))
    rank: Any = None
    base: Any = (
        select(  # type: ignore[call-overload]  # 13 columns: past sqlalchemy's typed overloads
            Package.id, Package.name, Package.summary, Package.latest_version,
            Package.keywords, Package.capabilities, Package.tools, Package.template_names,
            Package.downloads, Package.review_count, Package.stars_sum, Package.updated_at,
            col(Publisher.name).label("publisher"),
        )
        .join(Publisher, col(Publisher.id) == col(Package.publisher_id))
    )
    dialect = session.get_bind().dialect.name
    if words and fts and dialect == "postgresql":
        # Only letters and digits reach to_tsquery, so no word can be read as an operator.
        terms = re.findall(r"[^\W_]+", query.lower())
        tsquery = func.to_tsquery(
            literal_column("'simple'::regconfig"),
            cast(literal(" & ".join(f"{t}:*" for t in terms)), Text),
        )
        vector: ColumnElement[Any] = literal_column("package.search_vector")
        base = base.where(vector.op("@@")(tsquery))
        rank = -func.ts_rank(vector, tsquery)  # ascending, like bm25 below
    elif words and fts:
        match = " AND ".join(f'"{w}"*' for w in words)
        base = base.join(_FTS, _FTS.c.rowid == col(Package.id)).where(
            text("package_fts MATCH :match").bindparams(match=match)
        )
        rank = text("bm25(package_fts, 10.0, 3.0, 5.0, 2.0, 2.0)")
    elif words:
        fields = [
            col(Package.normalized_name), func.lower(Package.summary),
            func.lower(Package.keywords), func.lower(Package.capabilities),
            func.lower(Package.template_names),
        ]
        patterns = [f"%{_like_escaped(w)}%" for w in words]
        filters.extend(or_(*[f.like(p, "\\") for f in fields]) for p in patterns)
        rank = case(
            (and_(*[col(Package.normalized_name).like(p, "\\") for p in patterns]), literal(0)),
            else_=literal(1),
        )
    if filters:
        base = base.where(*filters)
    weight = float(prior_weight)
    rating = (weight * mean + col(Package.stars_sum)) / (weight + col(Package.review_count))
    order: list[Any]
    if sort == "rating":
        unrated_last = case((col(Package.review_count) > 0, literal(0)), else_=literal(1))
        order = [unrated_last, rating.desc(), col(Package.downloads).desc()]
    elif sort == "downloads":
        order = [col(Package.downloads).desc()]
    elif sort == "recent":
        order = [col(Package.updated_at).desc()]
    else:
        order = ([rank] if rank is not None else []) + [col(Package.downloads).desc()]
    order.append(col(Package.id).asc())  # a stable order makes pages disjoint
    total = session.execute(select(func.count()).select_from(base.subquery())).scalar_one()
    rows = session.execute(
        base.order_by(*order).limit(per_page).offset((page - 1) * per_page)
    ).all()
    return SearchPage(
        items=[_summary(r, mean, weight) for r in rows], total=total, page=page,
        per_page=per_page,
    )
