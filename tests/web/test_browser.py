"""The pages in a real headless Chromium (Debian's `chromium` + `chromium-driver`, driven by
Selenium) against a real uvicorn server on 127.0.0.1.

Skipped, with the reason, only when Chromium or its driver is absent and `CI` is unset; under
`CI=true` a missing browser fails the run (`scripts/services start` installs it). Screenshots of
the home and package pages are written to `test-artifacts/`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import LiveWeb

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-dev-shm-usage", "--window-size=1280,1600",
)

pytestmark = pytest.mark.e2e

# Scripts a hostile README or review would run; any of them sets a marker we can look for.
PWN = "window.__pwned=1;document.title='pwned'"
HOSTILE_README = f"""# Evil <img src=x onerror="{PWN}">

<script>{PWN}</script>

<svg onload="{PWN}"></svg> [click me](javascript:{PWN}) <a href="#" onclick="{PWN}">x</a>

<iframe srcdoc="<script>parent.{PWN}</script>"></iframe>
"""
HOSTILE_REVIEW = f"</p><script>alert('xss');{PWN}</script><img src=x onerror=\"alert(1);{PWN}\">"


def _browser_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is not installed (run scripts/services start as root)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture
def browser() -> Iterator[Any]:
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run under CI: {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="af-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    # Leave any alert() open instead of auto-dismissing it, so the test can see it happened.
    options.set_capability("unhandledPromptBehavior", "ignore")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _assert_no_script_ran(driver: Any, title: str) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        alert = driver.switch_to.alert
        text = alert.text
        alert.dismiss()
        pytest.fail(f"a dialog appeared: {text!r}")
    except NoAlertPresentException:
        pass
    assert driver.execute_script("return window.__pwned === undefined") is True
    assert driver.title == title


def _wait_for_url(driver: Any, prefix: str) -> None:
    """Wait (bounded) for a navigation started by a click or a submit to land on `prefix`."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 15).until(
        lambda d: d.current_url.startswith(prefix)
        and d.execute_script("return document.readyState") == "complete"
    )


def _screenshot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / name))
    assert (ARTIFACTS / name).stat().st_size > 1000


def test_search_open_read_sign_in_review(browser: Any, live_web: LiveWeb) -> None:
    from selenium.webdriver.common.by import By

    seed = live_web.seed
    acme = seed.publisher("acme")
    seed.package(acme, "acme/summarizer", summary="Summarizes long text",
                 readme="# Summarizer\n\nTurns **long** text into short text.")
    seed.package(acme, "acme/translator", summary="Translates text", keywords=["language"],
                 capabilities=["translate"])
    seed.review("acme/summarizer", "early-bird", 5, "Great", "Saved me hours")
    reviewer = seed.reviewer("zoe")
    seed.download("acme/summarizer", reviewer)  # so that her review is verified and counts
    url = live_web.url

    browser.get(url + "/")
    assert "Agent Factory" in browser.title
    _screenshot(browser, "home.png")

    box = browser.find_element(By.ID, "site-q")
    box.send_keys("summar")
    box.submit()
    _wait_for_url(browser, url + "/search?q=summar")
    results = browser.find_elements(By.CSS_SELECTOR, ".cards h3 a")
    assert [r.text for r in results] == ["acme/summarizer"]
    results[0].click()
    _wait_for_url(browser, url + "/packages/acme/summarizer")

    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("acme/summarizer")
    assert "Saved me hours" in browser.find_element(By.ID, "reviews").text
    copy = browser.find_element(By.CSS_SELECTOR, "button[data-copy-target]")
    assert copy.is_displayed()  # copy.js ran under the CSP and revealed its button
    before = browser.find_element(By.ID, "rating-explanation").text

    browser.find_element(By.CSS_SELECTOR, "#reviews a[href^='/login']").click()
    _wait_for_url(browser, url + "/login")
    browser.find_element(By.ID, "token").send_keys(reviewer.token)
    browser.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
    _wait_for_url(browser, url + "/packages/acme/summarizer")
    assert "Signed in as zoe" in browser.find_element(By.TAG_NAME, "header").text
    assert browser.current_url.startswith(url + "/packages/acme/summarizer")

    browser.find_element(By.CSS_SELECTOR, "input[name=stars][value='2']").click()
    browser.find_element(By.ID, "review-title").send_keys("Too terse")
    browser.find_element(By.ID, "review-body").send_keys("Drops the key point.")
    browser.find_element(By.CSS_SELECTOR, ".review-form button[type=submit]").click()
    _wait_for_url(browser, url + "/packages/acme/summarizer?done=rated")

    reviews = browser.find_element(By.ID, "reviews").text
    assert "Thank you: your rating was saved." in reviews
    assert "Too terse" in reviews and "Drops the key point." in reviews
    expected = live_web.registry.rating("acme/summarizer")
    after = browser.find_element(By.ID, "rating-explanation").text
    assert after.startswith(f"Ranking: {expected.explanation}") and after != before
    browser.execute_script("window.scrollTo(0, 0)")
    _screenshot(browser, "package.png")


def test_pages_fit_a_phone_screen(browser: Any, live_web: LiveWeb) -> None:
    seed = live_web.seed
    acme = seed.publisher("acme")
    seed.package(acme, "acme/a-package-with-a-rather-long-name-for-small-screens",
                 readme="# Usage\n\n```\n" + "x" * 300 + "\n```\n\n" + "word " * 200)
    seed.review("acme/a-package-with-a-rather-long-name-for-small-screens", "pat", 4,
                "Fine", "y" * 400)
    browser.set_window_size(390, 844)
    for path, shot in (
        ("/", "home-phone.png"),
        ("/packages/acme/a-package-with-a-rather-long-name-for-small-screens",
         "package-phone.png"),
    ):
        browser.get(live_web.url + path)
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on a phone"
        _screenshot(browser, shot)


def test_hostile_readme_and_review_render_inert(browser: Any, live_web: LiveWeb) -> None:
    from selenium.webdriver.common.by import By

    seed = live_web.seed
    acme = seed.publisher("acme")
    seed.package(acme, "acme/evil", summary="Totally harmless", readme=HOSTILE_README)
    review = seed.review("acme/evil", "mallory", 1, f"<script>{PWN}</script>", HOSTILE_REVIEW)
    live_web.registry.reply(acme.principal, review, f"<img src=x onerror=\"{PWN}\">")

    browser.get(live_web.url + "/packages/acme/evil")
    _assert_no_script_ran(browser, "acme/evil · Agent Factory")
    readme = browser.find_element(By.CSS_SELECTOR, ".readme").text
    assert "<script>" in readme and "onerror" in readme  # shown as text, to be read
    assert not browser.find_elements(By.CSS_SELECTOR, "main img, main svg, main iframe")
    assert "<script>alert('xss')" in browser.find_element(By.ID, "reviews").text
    # The javascript: link is text, not a link a visitor could click.
    assert not browser.find_elements(By.CSS_SELECTOR, "a[href^='javascript']")

    browser.get(live_web.url + "/search?q=evil")
    _assert_no_script_ran(browser, "Search: evil · Agent Factory")


def test_api_docs_render_offline_under_the_sites_csp(browser: Any, live_web: LiveWeb) -> None:
    """Swagger UI comes from this server (Chromium runs with background networking off) and
    nothing on the page trips the Content-Security-Policy."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    for path in ("/docs", "/api/v1/docs"):
        browser.get(live_web.url + path)
        WebDriverWait(browser, 20).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock")
        )
        assert "Agent Factory marketplace" in browser.find_element(
            By.CSS_SELECTOR, ".swagger-ui .info .title").text
        paths = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")]
        assert any(p.startswith("/api/v1/packages") for p in paths), paths
        problems = [
            entry["message"] for entry in browser.get_log("browser")
            if "Content Security Policy" in entry["message"]
        ]
        assert problems == []
    _screenshot(browser, "api-docs.png")
