"""What spam filters make of the demo edition: SpamAssassin's local rules over the real .eml files.

`spamassassin -L` runs every rule that needs no network: header, body, URI, HTML and MIME tests.
Out of scope, because they need the network or a real sending path and say nothing about our
content: DNS blocklists (RCVD_IN_*, URIBL_*), SPF, DKIM and DMARC (the provider signs, and the
domain's DNS vouches for it), Razor/Pyzor/DCC checksums, and Bayes (its verdict is whatever the
local machine was trained on, so it is turned off). Of the rules that do run, ENVIRONMENT_RULES
fire because of where the test stands; every other rule must score 0 points.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from lxml import html as lxml_html

from newsletter.sending.providers.outbox import OutboxProvider
from newsletter.services.sending import publish
from tests.conftest import WEEKLY_NOV_23

SPAMASSASSIN = shutil.which("spamassassin")

# Rule -> why it is not about our content.
ENVIRONMENT_RULES = {
    "NO_RECEIVED": "an outbox file never crossed an SMTP hop; the relay adds Received headers",
    "NO_RELAYS": "likewise: with no hop there is no relay to judge",
    "ALL_TRUSTED": "fires when every hop is a local, trusted one, as on a test machine (a bonus, < 0)",
    "WEIRD_PORT": "the fixture's public_url is the default http://localhost:8000; a site's is HTTPS on 443",
}
# SpamAssassin disables a rule scored 0, so its informational rules (HTML_MESSAGE, ...) score 0.001.
INFORMATIONAL = 0.001


def publish_demo(runtime) -> list[Path]:
    """The real weekly edition of the bundled sample, sent to the outbox: one .eml per reader."""
    report = publish(runtime, OutboxProvider(runtime.settings.outbox_dir), "weekly", WEEKLY_NOV_23)
    return sorted((runtime.settings.outbox_dir / f"edition-{report.edition_id}").glob("*.eml"))


def parse(path: Path) -> email.message.EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def html_part(message: email.message.EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None
    return body.get_content()


def language(message: email.message.EmailMessage) -> str:
    found = re.search(r'<html lang="([^"]+)"', html_part(message))
    assert found, "the HTML part has no lang"
    return found.group(1)


def spam_rules(raw: bytes, home: Path) -> dict[str, float]:
    """Every rule SpamAssassin fires on the message, with its score (local rules only)."""
    assert SPAMASSASSIN is not None
    prefs = home / "user_prefs"
    done = subprocess.run(
        [
            SPAMASSASSIN,
            "-L",  # local tests only: no DNS, no checksum networks
            "-x",  # create no per-user files
            f"--prefspath={prefs}",  # the caller's own preferences must not change the scores
            "--cf=use_bayes 0",
            "--cf=report_safe 0",
            "--cf=add_header all Tests _TESTSSCORES(,)_",
        ],
        input=raw,
        capture_output=True,
        timeout=120,
        env={**os.environ, "HOME": str(home)},
        check=True,
    )
    scored = email.message_from_bytes(done.stdout, policy=email.policy.default)
    tests = "".join(str(scored["X-Spam-Tests"]).split())
    assert tests, done.stderr.decode(errors="replace")
    if tests == "none":
        return {}
    return {rule: float(score) for rule, score in (item.split("=") for item in tests.split(","))}


@pytest.mark.skipif(
    SPAMASSASSIN is None,
    reason="SpamAssassin is not installed (apt-get install spamassassin; .ci/run does)",
)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the same .eml on either store
def test_the_demo_edition_scores_zero_with_spamassassin(newsroom, tmp_path: Path) -> None:
    sent = publish_demo(newsroom)
    assert {"en", "de"} <= {language(parse(path)) for path in sent}
    (tmp_path / "user_prefs").touch()
    # every reader's message (each a variant: English and German), as the outbox wrote it
    with ThreadPoolExecutor(max_workers=2) as pool:
        scored = pool.map(lambda path: spam_rules(path.read_bytes(), tmp_path), sent)
        results = dict(zip((path.name for path in sent), scored, strict=True))
    ours = [
        f"{reader}: {rule} {score:+.3f}"
        for reader, rules in results.items()
        for rule, score in sorted(rules.items())
        if rule not in ENVIRONMENT_RULES and abs(score) > INFORMATIONAL
    ]
    assert not ours, "rules our content fires:\n" + "\n".join(ours)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_preheader_is_hidden_without_same_colour_text(newsroom) -> None:
    """Clients show the first text of the body as the preview line: it must be the preheader,
    hidden by display and size (kept through premailer's inlining), never by a text colour."""
    for path in publish_demo(newsroom):
        message = parse(path)
        document = lxml_html.fromstring(html_part(message).encode("utf-8"))
        body = document.find("body")
        assert body is not None
        first = body[0]
        assert first.get("class") == "preheader" and first.text_content().strip()
        headline = body.find_class("trending-title") or body.find_class("card-title")
        assert first.text_content().strip().startswith(headline[0].text_content().strip())
        style = {
            name.strip(): value.strip()
            for name, _, value in (part.partition(":") for part in first.get("style", "").split(";"))
            if name.strip()
        }
        assert style.get("display") == "none"
        for name, value in {
            "max-height": "0",
            "overflow": "hidden",
            "opacity": "0",
            "mso-hide": "all",
            "font-size": "0",
        }.items():
            assert style.get(name) == value, (name, style)
        assert "color" not in style, style
