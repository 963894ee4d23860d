"""What spam filters make of the demo edition: SpamAssassin's local rules over the real .eml files.

`spamassassin -L` runs every rule that needs no network: header, body, URI, HTML and MIME tests.
Out of scope, because they need the network or a real sending path and say nothing about our
content: DNS blocklists (RCVD_IN_*, URIBL_*), SPF, DKIM and DMARC (the provider signs, and the
domain's DNS vouches for it), Razor/Pyzor/DCC checksums, and Bayes (its verdict is whatever the
local machine was trained on, so it is turned off). Of the rules that do run, ENVIRONMENT_RULES
fire because of where the test stands; every other rule must score 0 points.
"""

from __future__ import annotations

import mailbox
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from lxml import html as lxml_html

from tests.support.demo_edition import html_part, language, parse, publish_demo

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


def spam_rules(messages: list[bytes], home: Path) -> list[dict[str, float]]:
    """Every rule SpamAssassin fires on each message, with its score (local rules only): one
    run over an mbox of them all, as starting SpamAssassin costs seconds."""
    assert SPAMASSASSIN is not None
    prefs = home / "user_prefs"
    prefs.touch()
    box = home / "edition.mbox"
    mbox = mailbox.mbox(box)
    for place, raw in enumerate(messages):  # SpamAssassin walks an mbox in an order of its own
        mbox.add(f"X-Place: {place}\r\n".encode() + raw)
    mbox.close()
    done = subprocess.run(
        [
            SPAMASSASSIN,
            "--mbox",  # every message of the file, each written out in turn
            "-L",  # local tests only: no DNS, no checksum networks
            "-x",  # create no per-user files
            f"--prefspath={prefs}",  # the caller's own preferences must not change the scores
            "--cf=use_bayes 0",
            "--cf=report_safe 0",
            "--cf=add_header all Tests _TESTSSCORES(,)_",
            str(box),
        ],
        capture_output=True,
        timeout=300,
        env={**os.environ, "HOME": str(home)},
        check=True,
    )
    scored = home / "scored.mbox"
    scored.write_bytes(done.stdout)
    found: dict[int, dict[str, float]] = {}
    for message in mailbox.mbox(scored):
        tests = "".join(str(message["X-Spam-Tests"]).split())
        assert tests and tests != "None", done.stderr.decode(errors="replace")
        rules = {} if tests == "none" else dict(item.split("=") for item in tests.split(","))
        found[int(str(message["X-Place"]))] = {rule: float(score) for rule, score in rules.items()}
    assert sorted(found) == list(range(len(messages))), done.stderr.decode(errors="replace")
    return [found[place] for place in range(len(messages))]


@pytest.mark.e2e
@pytest.mark.skipif(
    SPAMASSASSIN is None,
    reason="SpamAssassin is not installed (apt-get install spamassassin; .ci/run does)",
)
def test_the_demo_edition_scores_zero_with_spamassassin(newsroom, tmp_path: Path) -> None:
    """End to end: SpamAssassin's own rules over the real .eml files, a program of its own."""
    sent = publish_demo(newsroom)
    assert {"en", "de"} <= {language(parse(path)) for path in sent}
    # every reader's message (each a variant: English and German), as the outbox wrote it
    scored = spam_rules([path.read_bytes() for path in sent], tmp_path)
    results = dict(zip((path.name for path in sent), scored, strict=True))
    assert all("HTML_MESSAGE" in rules for rules in scored), scored  # the check sees the rules
    ours = [
        f"{reader}: {rule} {score:+.3f}"
        for reader, rules in results.items()
        for rule, score in sorted(rules.items())
        if rule not in ENVIRONMENT_RULES and abs(score) > INFORMATIONAL
    ]
    assert not ours, "rules our content fires:\n" + "\n".join(ours)


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
