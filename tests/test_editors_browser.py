"""An editor's round in a real browser (Debian's chromium through Selenium and chromedriver)
against `newsletter serve`: sign in, see the next edition at both widths, pin an article, hold
and release the edition. Screenshots of each step are kept in
`test-artifacts/browser/<test name>/`; the console must report no Content Security Policy
violation, and the digests' frames must run no script."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from newsletter.services import audit, editors
from tests.support.browser import BROWSER, Browser
from tests.support.editors import ED
from tests.support.upcoming import prepare
from tests.support.upcoming import served_desk as desk  # noqa: F401 (the fixture)

pytestmark = BROWSER
PASSWORD = "correct horse battery staple"


def wide_screenshot(chromium: Browser, step: str) -> None:
    """The whole page at 1,400 px, wide enough for both frames side by side."""
    height = chromium.driver.execute_script("return document.documentElement.scrollHeight")
    chromium.driver.set_window_size(1400, max(800, min(int(height) + 20, 6000)))
    chromium.shots += 1
    chromium.driver.save_screenshot(str(chromium.folder / f"{chromium.shots:02d}-{step}.png"))


def button(chromium: Browser, action: str, value: str, article: str | None = None):
    """The submit button of the form posting `value` as `action` (for `article`, if given)."""
    for form in chromium.driver.find_elements(By.CSS_SELECTOR, f'form[action$="/{action}"]'):
        fields = {
            field.get_attribute("name"): field.get_attribute("value")
            for field in form.find_elements(By.CSS_SELECTOR, "input[type=hidden]")
        }
        if fields.get("action") == value and (article is None or fields.get("article") == article):
            return form.find_element(By.CSS_SELECTOR, "button")
    raise AssertionError(f"no {action} form for {value} {article or ''}")


def test_an_editor_pins_holds_and_releases_in_a_browser(desk, browser: Browser) -> None:  # noqa: F811
    """End to end: what a real browser does with the pages (frames sandboxed at both widths, the
    Content Security Policy, forms posting with their tokens), which no HTTP client shows."""
    prepare(desk)
    browser.open(f"{desk.url}/editor/upcoming/weekly")
    assert browser.driver.current_url.startswith(f"{desk.url}/editor/login")  # shut out first
    browser.find("input[name=email]").send_keys(ED)
    browser.find("input[name=password]").send_keys(PASSWORD)
    browser.submit(browser.find("form[action^='/editor/login'] button"))
    browser.open(f"{desk.url}/editor/upcoming/weekly")
    assert "the next edition" in browser.heading()
    frames = browser.driver.find_elements(By.CSS_SELECTOR, ".frames iframe")
    assert [f.get_attribute("width") for f in frames] == ["800", "390"]
    assert all(f.get_attribute("sandbox") == "" for f in frames)  # no script, no origin
    for frame in frames:
        assert frame.size["width"] in (800, 390)
        browser.driver.switch_to.frame(frame)
        digest = browser.driver.find_element(By.TAG_NAME, "body").text
        scripted = browser.driver.execute_script("return 1")  # the driver's own, not the page's
        browser.driver.switch_to.default_content()
        assert "The European Times" in digest and scripted == 1
    wide_screenshot(browser, "upcoming-both-widths")

    now = desk.clock()
    section = dict(editors.preview(desk.runtime, "weekly", now, ["politics"], "en").plan.sections)["politics"]
    last = str(section[-1])
    browser.submit(button(browser, "pick", "pin", last))
    assert "Pinned." in browser.text() and "pinned #1" in browser.text()
    wide_screenshot(browser, "pinned")
    assert dict(editors.preview(desk.runtime, "weekly", now, ["politics"], "en").plan.sections)["politics"][
        0
    ] == int(last)

    browser.submit(button(browser, "decide", "hold"))
    assert "Held" in browser.text() and f"held by {ED}" in browser.text()
    wide_screenshot(browser, "held")
    browser.submit(button(browser, "decide", "release"))
    assert "Released" in browser.text() and "held by" not in browser.text()
    wide_screenshot(browser, "released")

    assert browser.csp_violations() == []
    actions = [(e.action, e.editor) for e in audit.entries(desk.runtime, 10)]
    for action in ("edition pin", "edition hold", "edition release", "sign-in"):
        assert (action, ED) in actions
