"""The demo edition's emails under axe-core in headless Chromium: no WCAG 2.1 A or AA violation.

Every reader's HTML part (English and German variants) is checked in light and in dark mode
(the templates carry a prefers-color-scheme: dark palette, whose contrast counts as well), all
in one browser for the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from selenium import webdriver

from newsletter.sending.providers.outbox import OutboxProvider
from newsletter.services import breaking
from tests.axe_runner import violations
from tests.conftest import NEWSROOM
from tests.support.alerts import TRANSLATED, newsletters, opt_in
from tests.support.browser import BROWSER, chrome
from tests.support.demo_edition import html_part, language, parse, publish_demo

pytestmark = BROWSER


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """The module's browser, with every host name failing to resolve: an email's remote images
    and links lead nowhere, as in a mail client that blocks them."""
    driver = chrome(tmp_path_factory.mktemp("axe") / "profile", "--host-resolver-rules=MAP * ~NOTFOUND")
    try:
        yield driver
    finally:
        driver.quit()


def test_every_demo_email_passes_axe_wcag_21_aa(newsroom, offline: webdriver.Chrome) -> None:
    """End to end: a real browser lays the emails out and axe reads the result (contrast, both
    colour schemes), which no HTML parser can judge."""
    messages = [parse(path) for path in publish_demo(newsroom)]
    assert {"en", "de"} <= {language(message) for message in messages}
    found = [
        f"{scheme}: {message['To'].addresses[0].addr_spec}: {violation}"
        for scheme in ("light", "dark")
        for message in messages
        for violation in violations(offline, html_part(message), dark=scheme == "dark")
    ]
    assert not found, f"{len(found)} violations:\n" + "\n".join(found)
    # The check can see a violation: an image with no text alternative.
    unlabelled = (
        '<!doctype html><html lang="en"><head><title>t</title></head><body><img src="x.png"></body></html>'
    )
    assert "image-alt" in {violation.rule for violation in violations(offline, unlabelled)}


def test_alert_emails_pass_axe_wcag_21_aa(newsroom, make_runtime, offline: webdriver.Chrome) -> None:
    """End to end, as the digests above: an alert in English and in German, light and dark."""
    site = make_runtime(**NEWSROOM, newsletters=newsletters())
    opt_in(site, 1)
    opt_in(site, 1, first=1, language="de")
    now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    opened = breaking.open_by_editor(site, "breaking", TRANSLATED, now)
    assert opened.edition.id is not None
    breaking.send_alert(site, opened.edition.id, now, OutboxProvider(site.settings.outbox_dir))
    messages = [
        parse(p) for p in sorted((site.settings.outbox_dir / f"edition-{opened.edition.id}").glob("*.eml"))
    ]
    assert {language(message) for message in messages} == {"en", "de"}
    found = [
        f"{scheme}: {message['To'].addresses[0].addr_spec}: {violation}"
        for scheme in ("light", "dark")
        for message in messages
        for violation in violations(offline, html_part(message), dark=scheme == "dark")
    ]
    assert not found, f"{len(found)} violations:\n" + "\n".join(found)
