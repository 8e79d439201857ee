"""Every page, through the real app: what a visitor sees, pagination, 404s, hostile content."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from registry.service import Registry
from tests.web.conftest import Seeder


def _names_in(html: str) -> list[str]:
    return re.findall(r'<h3><a href="/packages/[^"]+">([^<]+)</a>', html)


def test_home_shows_top_rated_most_downloaded_and_recent(
    client: TestClient, seed: Seeder, registry: Registry
) -> None:
    acme = seed.publisher("acme")
    for short in ("alpha", "beta", "gamma"):
        seed.package(acme, f"acme/{short}")
    for n in range(3):
        seed.review("acme/gamma", f"fan{n}", 5)
    seed.review("acme/alpha", "critic", 1)
    for _ in range(4):  # more than gamma's three reviewers' downloads
        registry.download("acme/beta", "1.0.0")
    page = client.get("/")
    assert page.status_code == 200
    sections = page.text.split("<section")[1:]
    titles = [re.search(r"<h2[^>]*>([^<]+)</h2>", s).group(1) for s in sections]  # type: ignore[union-attr]
    assert titles == ["Top rated", "Most downloaded", "Recently updated"]
    assert _names_in(sections[0])[0] == "acme/gamma"
    assert _names_in(sections[1])[0] == "acme/beta"
    assert set(_names_in(sections[2])) == {"acme/alpha", "acme/beta", "acme/gamma"}


def test_empty_home_says_so(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "No packages yet." in page.text


def test_search_filters_and_paginates(client: TestClient, seed: Seeder) -> None:
    acme = seed.publisher("acme")
    for n in range(23):
        seed.package(acme, f"acme/tool{n:02d}", summary="Summarizes text")
    seed.package(acme, "acme/translator", summary="Translates text", capabilities=["translate"])
    first = client.get("/search", params={"q": "tool", "sort": "recent"})
    assert first.status_code == 200
    assert "23 packages found" in first.text
    assert len(_names_in(first.text)) == 20
    assert "Page 1 of 2" in first.text
    next_link = re.search(r'<a rel="next" href="([^"]+)"', first.text)
    assert next_link is not None
    second = client.get(next_link.group(1).replace("&amp;", "&"))
    assert len(_names_in(second.text)) == 3
    assert set(_names_in(first.text)).isdisjoint(_names_in(second.text))
    assert '<option value="recent" selected>' in second.text
    filtered = client.get("/search", params={"capability": "translate"})
    assert _names_in(filtered.text) == ["acme/translator"]


def test_search_tolerates_edited_urls(client: TestClient, seed: Seeder) -> None:
    seed.package(seed.publisher("acme"), "acme/alpha")
    page = client.get("/search", params={"page": "zebra", "sort": "sideways"})
    assert page.status_code == 200
    assert _names_in(page.text) == ["acme/alpha"]
    beyond = client.get("/search", params={"page": "999"})
    assert beyond.status_code == 200 and "No package matches" in beyond.text


def test_package_page_shows_everything_a_user_checks(
    client: TestClient, seed: Seeder, registry: Registry
) -> None:
    acme = seed.publisher("acme")
    seed.package(acme, "acme/summarizer", "1.0.0", tools=["json_parser"],
                 manifest={"permissions": ["network"]})
    seed.package(acme, "acme/summarizer", "1.1.0", tools=["json_parser"],
                 manifest={"permissions": ["network"]}, readme="# Summarizer\n\nUse **it**.")
    registry.yank(acme.principal, "acme/summarizer", "1.0.0", "leaks tokens in logs")
    seed.review("acme/summarizer", "bob", 4, "Solid", "Works well")
    page = client.get("/packages/acme/summarizer")
    assert page.status_code == 200
    html = page.text
    assert "<h1>acme/summarizer" in html
    assert '<code id="install-cmd">agentfactory install acme/summarizer</code>' in html
    assert 'data-copy-target="install-cmd"' in html
    assert "<h3>Summarizer</h3>" in html and "<strong>it</strong>" in html
    assert re.search(r'class="yanked"><strong>1.0.0</strong>', html)
    assert "leaks tokens in logs" in html
    assert "Signature verified" in html
    assert acme.key.key_id in html
    assert "<li>json_parser</li>" in html and "<li>network</li>" in html
    assert "<code>acme/summarizer</code>" in html  # the template it provides
    rating = registry.rating("acme/summarizer")
    assert rating.mean is not None
    assert f'<span id="rating-mean">{rating.mean:.1f}</span>' in html
    assert "Version 1.1.0:" in html and "about version 1.1.0" in html
    assert f"Ranking: {rating.explanation}." in html
    assert '<progress max="1" value="1"' in html  # the one 4-star vote in the histogram
    assert "Works well" in html and "bob" in html


def test_package_page_shows_what_the_sandbox_found_at_publish(
    client: TestClient, seed: Seeder
) -> None:
    acme = seed.publisher("acme")
    seed.package(acme, "acme/summarizer", "1.0.0")  # one example, run by the server's sandbox
    seed.package(acme, "acme/quiet", "1.0.0", manifest={"examples": []})
    vetted = client.get("/packages/acme/summarizer").text
    assert '<dd class="vetting-passed">passed</dd>' in vetted
    assert "<dd>1 of 1 example</dd>" in vetted  # singular for one
    assert re.search(r"<dt>Fuel used</dt><dd>[\d,]+</dd>", vetted)
    unvetted = client.get("/packages/acme/quiet").text
    assert '<dd class="vetting-unvetted">unvetted</dd>' in unvetted
    assert "declares no examples" in unvetted


def test_reviews_paginate_and_show_publisher_replies(
    client: TestClient, seed: Seeder, registry: Registry
) -> None:
    acme = seed.publisher("acme")
    seed.package(acme, "acme/summarizer")
    ids = [seed.review("acme/summarizer", f"user{n:02d}", 1 + n % 5, body=f"review number {n}")
           for n in range(12)]
    registry.reply(acme.principal, ids[0], "Thanks, fixed in 1.0.1")
    first = client.get("/packages/acme/summarizer")
    second = client.get("/packages/acme/summarizer", params={"page": 2})
    bodies = re.compile(r"review number (\d+)")
    seen_first, seen_second = set(bodies.findall(first.text)), set(bodies.findall(second.text))
    assert len(seen_first) == 10 and len(seen_second) == 2
    assert seen_first | seen_second == {str(n) for n in range(12)}
    assert "Page 1 of 2" in first.text
    both = first.text + second.text
    assert "Reply from the publisher" in both and "Thanks, fixed in 1.0.1" in both


def test_publisher_page_lists_their_packages_and_ratings(client: TestClient, seed: Seeder) -> None:
    acme = seed.publisher("acme")
    seed.package(acme, "acme/alpha")
    seed.package(acme, "acme/beta")
    seed.package(seed.publisher("other"), "other/acme-clone", summary="acme lookalike")
    seed.review("acme/alpha", "carol", 5)
    seed.review("acme/beta", "dave", 3)
    page = client.get("/publishers/acme")
    assert page.status_code == 200
    assert sorted(_names_in(page.text)) == ["acme/alpha", "acme/beta"]
    assert "Ratings received</dt><dd>2, average" in page.text
    assert "4.0" in page.text


def test_unknown_things_get_an_html_404(client: TestClient) -> None:
    for path in ("/packages/acme/missing", "/publishers/nobody", "/no/such/page"):
        page = client.get(path)
        assert page.status_code == 404, path
        assert page.headers["content-type"].startswith("text/html")
        assert "<h1>" in page.text
    api = client.get("/api/v1/packages/acme/missing", headers={"accept": "application/json"})
    assert api.status_code == 404
    assert api.headers["content-type"] == "application/problem+json"


def test_hostile_readme_review_and_reply_are_escaped(
    client: TestClient, seed: Seeder, registry: Registry
) -> None:
    acme = seed.publisher("acme")
    seed.package(acme, "acme/evil", summary="<script>window.__pwned=1</script>",
                 readme="# <img src=x onerror=alert(1)>\n\n<script>document.title='pwned'</script>")
    review = seed.review("acme/evil", "mallory", 1, '<svg onload="alert(1)">',
                         "</textarea><script>alert('x')</script>")
    registry.reply(acme.principal, review, "<iframe src=javascript:alert(1)>")
    for path in ("/packages/acme/evil", "/search?q=evil", "/", "/publishers/acme"):
        html = client.get(path).text
        scripts = re.findall(r"<script[^>]*>", html)
        assert all(tag == '<script src="/static/copy.js" defer>' for tag in scripts), path
        assert not re.search(r"<(img|svg|iframe)\b", html), path
        assert not re.search(r"<[a-z]+[^>]*\son[a-z]+=", html), path
    html = client.get("/packages/acme/evil").text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert "&lt;/textarea&gt;&lt;script&gt;" in html


def test_static_assets_are_served(client: TestClient) -> None:
    css = client.get("/static/style.css")
    js = client.get("/static/copy.js")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    assert js.status_code == 200 and "clipboard" in js.text


def test_top_rated_never_puts_an_unrated_package_above_a_rated_one(
    client: TestClient, seed: Seeder, registry: Registry
) -> None:
    acme = seed.publisher("acme")
    for short in ("popular", "quiet", "loved"):
        seed.package(acme, f"acme/{short}")
    for _ in range(3):
        registry.download("acme/popular", "1.0.0")
    # One 5-star vote: the mean of all ratings is 5, which an unrated package must not borrow.
    seed.review("acme/loved", "fan", 5)
    home = client.get("/").text.split("<section")[1]
    assert _names_in(home) == ["acme/loved", "acme/popular", "acme/quiet"]

    seed.package(acme, "acme/meh")
    seed.review("acme/meh", "critic", 2)  # below the mean: still above every unrated package
    page = client.get("/search?sort=rating")
    assert _names_in(page.text) == ["acme/loved", "acme/meh", "acme/popular", "acme/quiet"]
    api = client.get("/api/v1/packages?sort=rating", headers={"accept": "application/json"})
    items = api.json()["items"]
    assert [p["name"] for p in items] == ["acme/loved", "acme/meh", "acme/popular", "acme/quiet"]
    # The prior is the mean of all ratings (3.5) weighted as 5 votes.
    assert items[0]["rating_bayesian"] == pytest.approx((5 * 3.5 + 5) / 6)
    assert items[1]["rating_bayesian"] == pytest.approx((5 * 3.5 + 2) / 6)
    publisher = client.get("/publishers/acme").text
    assert _names_in(publisher)[:2] == ["acme/loved", "acme/meh"]


def test_counts_are_singular_for_one(client: TestClient, seed: Seeder, registry: Registry) -> None:
    acme = seed.publisher("acme")
    seed.package(acme, "acme/solo")
    seed.review("acme/solo", "fan", 4)  # the fan's download is the one download
    for page in (client.get("/").text, client.get("/search?q=solo").text):
        assert "1 download<" in page or "1 download\n" in page
        assert "(1 rating)" in page
        assert "1 downloads" not in page and "1 ratings" not in page
    assert "1 package found" in client.get("/search?q=solo").text
    detail = client.get("/packages/acme/solo").text
    assert "1 download" in detail and "1 downloads" not in detail
    assert "from 1 verified rating, all versions" in detail
    assert "1 star</th>" in detail and "2 stars</th>" in detail
    assert "0 packages found" in client.get("/search?q=nothing-matches").text


def test_sign_in_page_names_commands_that_exist(client: TestClient) -> None:
    from click.testing import CliRunner

    from cli.main import cli

    text = client.get("/login").text
    assert "token create" not in text
    assert "<code>agentfactory register NAME</code>" in text
    assert 'the <code>"token"</code> field of the <code>config.json</code>' in text
    listed = CliRunner().invoke(cli, ["--help"]).output.split("Commands:")[1]
    names = {line.split()[0] for line in listed.splitlines() if line.startswith("  ")}
    assert "register" in names and "token" not in names
