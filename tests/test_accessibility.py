"""The demo edition's emails under axe-core in headless Chromium: no WCAG 2.1 A or AA violation.

Every reader's HTML part (English and German variants) is checked in light and in dark mode
(the templates carry a prefers-color-scheme: dark palette, whose contrast counts as well), all
in one browser for the module.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium import webdriver

from tests.axe_runner import violations
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
