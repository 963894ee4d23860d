"""The demo edition's emails under axe-core in headless Chromium: no WCAG 2.1 A or AA violation.

Every reader's HTML part (English and German variants) is checked in light and in dark mode
(the templates carry a prefers-color-scheme: dark palette, whose contrast counts as well).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.axe_runner import AXE_VERSION, CHROMIUM, NPM, installed_version, violations
from tests.test_deliverability import html_part, language, parse, publish_demo

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)",
    ),
    pytest.mark.skipif(
        NPM is None and installed_version() != AXE_VERSION,
        reason="axe-core is not in tests/.node and npm is not installed to fetch it (.ci/run does)",
    ),
]


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the same HTML on either store
def test_every_demo_email_passes_axe_wcag_21_aa(newsroom, scheme: str) -> None:
    messages = [parse(path) for path in publish_demo(newsroom)]
    assert {"en", "de"} <= {language(message) for message in messages}
    with ThreadPoolExecutor(max_workers=2) as pool:
        checked = pool.map(lambda message: violations(html_part(message), dark=scheme == "dark"), messages)
        found = [
            f"{message['To'].addresses[0].addr_spec}: {violation}"
            for message, found_here in zip(messages, checked, strict=True)
            for violation in found_here
        ]
    assert not found, f"{len(found)} violations ({scheme}):\n" + "\n".join(found)
