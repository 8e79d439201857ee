from __future__ import annotations

import pytest

from registry import Registry
from registry.errors import InvalidQuery, NoMatchingRelease, NotFound, PermissionDenied
from registry.resolve import choose
from tests.registry.factories import TestPublisher, download_as, make_publisher, publish


@pytest.fixture
def versions(registry: Registry, acme: TestPublisher) -> Registry:
    for v in ["1.0.0", "1.2.0", "1.10.0", "2.0.0b1", "1.9.0"]:
        publish(registry, acme, version=v)
    return registry


def test_resolve_compares_versions_not_strings(versions: Registry) -> None:
    assert versions.resolve("acme/summarizer").version == "1.10.0"
    assert versions.resolve("acme/summarizer", "<1.10").version == "1.9.0"
    assert versions.resolve("ACME/Summarizer", "~=1.2.0").version == "1.2.0"


def test_prereleases_only_when_asked(versions: Registry) -> None:
    assert versions.resolve("acme/summarizer", prereleases=True).version == "2.0.0b1"
    assert versions.resolve("acme/summarizer", ">=2.0.0b1").version == "2.0.0b1"


def test_yanked_release_is_skipped_except_for_an_exact_pin(
    versions: Registry, acme: TestPublisher
) -> None:
    yanked = versions.yank(acme.principal, "acme/summarizer", "1.10.0", "broken on py3.12")
    assert yanked.yanked and yanked.yank_reason == "broken on py3.12"
    assert versions.resolve("acme/summarizer").version == "1.9.0"
    assert versions.package("acme/summarizer").latest_version == "1.9.0"
    pinned = versions.resolve("acme/summarizer", "==1.10.0")
    assert pinned.version == "1.10.0" and pinned.yanked
    with pytest.raises(NoMatchingRelease):  # a wildcard is not an exact pin
        versions.resolve("acme/summarizer", "==1.10.*")
    with pytest.raises(NoMatchingRelease):
        versions.resolve("acme/summarizer", ">1.9,<2")
    versions.unyank(acme.principal, "acme/summarizer", "1.10.0")
    assert versions.resolve("acme/summarizer").version == "1.10.0"
    assert versions.package("acme/summarizer").latest_version == "1.10.0"


def test_wildcard_pin_does_not_return_yanked() -> None:
    candidates = [(1, "1.0", True), (2, "1.1", False)]
    assert choose(candidates, "==1.*") == 2
    assert choose(candidates, "==1.0") == 1
    assert choose(candidates, "===1.0") == 1
    assert choose(candidates, ">=1.0,==1.0") is None


def test_only_the_owner_may_yank(versions: Registry) -> None:
    other = make_publisher(versions, "zeta")
    with pytest.raises(PermissionDenied):
        versions.yank(other.principal, "acme/summarizer", "1.0.0", "mine now")


def test_resolve_errors(versions: Registry) -> None:
    with pytest.raises(NotFound):
        versions.resolve("acme/nothing")
    with pytest.raises(InvalidQuery):
        versions.resolve("acme/summarizer", ">>1")
    with pytest.raises(NoMatchingRelease) as err:
        versions.resolve("acme/summarizer", ">=3")
    assert err.value.specifier == ">=3"


def test_download_counts_and_returns_the_bytes(registry: Registry, acme: TestPublisher) -> None:
    release = publish(registry, acme)
    got, data = registry.download("acme/summarizer", "1.0")
    assert got.digest == release.digest and len(data) == release.size
    registry.download("acme/summarizer", "1.0.0")
    assert registry.package("acme/summarizer").downloads == 2


@pytest.fixture
def catalog(registry: Registry) -> Registry:
    acme, zeta = make_publisher(registry, "acme"), make_publisher(registry, "zeta")
    publish(registry, acme, "acme/summarizer", summary="Summarizes long text",
            keywords=["nlp"], capabilities=["summarize"], tools=["json_parser"])
    publish(registry, acme, "acme/translator", summary="Translates text",
            keywords=["nlp", "language"], capabilities=["translate"])
    publish(registry, zeta, "zeta/text-summary", summary="Another summary agent",
            capabilities=["summarize"], template_names=["zeta/digest"])
    for _ in range(4):
        registry.download("acme/translator", "1.0.0")
    registry.download("zeta/text-summary", "1.0.0")
    return registry


def test_search_by_words_keywords_and_template_names(catalog: Registry) -> None:
    names = [p.name for p in catalog.search("summar").items]
    assert set(names) == {"acme/summarizer", "zeta/text-summary"}
    assert [p.name for p in catalog.search("language").items] == ["acme/translator"]
    assert [p.name for p in catalog.search("digest").items] == ["zeta/text-summary"]
    assert catalog.search("nothing-like-this").total == 0


def test_search_filters_and_sorts(catalog: Registry) -> None:
    assert [p.name for p in catalog.search(capability="translate").items] == ["acme/translator"]
    assert [p.name for p in catalog.search(tool="json_parser").items] == ["acme/summarizer"]
    by_downloads = [p.name for p in catalog.search(sort="downloads").items]
    assert by_downloads == ["acme/translator", "zeta/text-summary", "acme/summarizer"]
    assert catalog.search(sort="recent").items[0].name == "zeta/text-summary"
    with pytest.raises(InvalidQuery):
        catalog.search(sort="random")


def test_search_pagination_is_disjoint(catalog: Registry) -> None:
    first, second = catalog.search(per_page=2), catalog.search(per_page=2, page=2)
    assert first.total == second.total == 3
    assert len(first.items) == 2 and len(second.items) == 1
    assert {p.name for p in first.items}.isdisjoint({p.name for p in second.items})


def test_search_like_fallback_matches_fts(catalog: Registry) -> None:
    catalog.fts = False
    assert {p.name for p in catalog.search("summar").items} == {
        "acme/summarizer", "zeta/text-summary"}
    # Relevance without FTS: a name match beats more downloads.
    assert catalog.search("text").items[0].name == "zeta/text-summary"


def test_rating_sort_uses_bayesian_average(catalog: Registry) -> None:
    users = [make_publisher(catalog, f"user{i}", None) for i in range(6)]
    for user in users:  # only reviews by downloaders count
        for name in ("zeta/text-summary", "acme/translator", "acme/summarizer"):
            download_as(catalog, user, name)
    catalog.rate(users[0].principal, "zeta/text-summary", 5)  # one perfect vote
    for user in users:  # six perfect votes
        catalog.rate(user.principal, "acme/translator", 5)
    for user in users[:3]:
        catalog.rate(user.principal, "acme/summarizer", 2)
    ranked = [p.name for p in catalog.search(sort="rating").items]
    assert ranked == ["acme/translator", "zeta/text-summary", "acme/summarizer"]
    one_vote = catalog.rating("zeta/text-summary")
    assert one_vote.mean == 5.0 and one_vote.bayesian < catalog.rating("acme/translator").bayesian
