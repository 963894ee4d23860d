"""One reader's whole journey through the readers' pages in a real browser: Debian's chromium,
driven by Selenium through Debian's chromedriver, against `newsletter serve` in its own process.

Sign up in German, confirm from the emailed link, change sections and pause, unsubscribe from
the weekly and come back; every step is checked on the page (in German once the reader chose it)
and in the store (`newsletter subscribers show --json`), and the browser's console must report no
Content Security Policy violation.

A screenshot of every step is left in `test-artifacts/browser/<test name>/` under the project
root (git-ignored), numbered in the order of the journey, for a person to look at.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from selenium.webdriver.support.select import Select
from sqlalchemy import select

from newsletter import i18n
from newsletter.store.models import Subscriber
from newsletter.subscribers.links import Links
from tests.conftest import free_port
from tests.support.browser import BROWSER, Browser
from tests.support.cli import run_cli
from tests.support.settings_files import SECRET_ENV as SECRET
from tests.support.settings_files import settings_file

pytestmark = BROWSER
READER = "anna.weber@example.org"
GERMAN = i18n.gettext_for("de")


@dataclass
class Server:
    """`newsletter serve` on a loopback port, with the settings file the CLI uses too."""

    url: str
    config: Path
    process: subprocess.Popen
    log: Path

    def cli_json(self, *args: str) -> dict:
        done = run_cli(*args, "--json", "--config", str(self.config), env=SECRET, cwd=self.config.parent)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def said(self) -> str:
        """The server's log, for a failure's message (a refused form is logged with its reason)."""
        return self.log.read_text(errors="replace")

    def stored(self, address: str) -> dict:
        return self.cli_json("subscribers", "show", address)


@pytest.fixture
def server(newsroom, tmp_path) -> Iterator[Server]:
    """The sample store served on a free port; public_url is that address, so the emailed links
    lead to it."""
    port = str(free_port())
    url = f"http://127.0.0.1:{port}"
    config = settings_file(newsroom, tmp_path)
    default = 'public_url = "https://news.example"'
    assert default in config.read_text()
    config.write_text(config.read_text().replace(default, f'public_url = "{url}"'))
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "serve", "--config", str(config), "--port", port],
            env={**_environment(), **SECRET},
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        _wait_for(url, process, log)
        yield Server(url, config, process, log)
    finally:
        process.terminate()
        process.wait(20)


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}


def _wait_for(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"newsletter serve stopped: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"newsletter serve did not answer within a minute: {log.read_text()}")


def notices_to(outbox: Path, address: str) -> list[email.message.EmailMessage]:
    """The notices to `address`, once one has come (a page sends them after answering)."""
    folder = outbox / "outside-ledger"
    deadline = time.monotonic() + 20
    while True:
        paths = sorted(folder.glob("*.eml"), key=lambda path: path.stat().st_mtime) if folder.is_dir() else []
        messages = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in paths]
        found = [message for message in messages if message["To"] == address]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def link_in(message: email.message.EmailMessage, server: Server, kind: str) -> str:
    text = message.get_body(("plain",)).get_content()
    found = re.search(rf"{re.escape(server.url)}/{kind}/\S+", text)
    assert found, f"no {kind} link to {server.url} in:\n{text}"
    return found.group(0)


def german(message: str) -> str:
    """The catalog's German for an English msgid; a missing translation fails the test."""
    translated = GERMAN(message)
    assert translated != message, f"no German for {message!r}"
    return translated


def test_a_readers_whole_journey_in_a_browser(server: Server, browser: Browser, newsroom) -> None:
    """End to end: a real browser against `newsletter serve` in its own process (forms, redirects,
    the language chosen, the Content Security Policy as a browser enforces it)."""
    # Sign up (the page in the browser's English), choosing German for the emails and pages.
    browser.open(f"{server.url}/subscribe")
    assert browser.heading() == "Subscribe to our newsletters"
    assert browser.find("html").get_attribute("lang") == "en"
    browser.find("#email").send_keys(READER)
    browser.find("#name").send_keys("Anna Weber")
    for box in ("#newsletter-weekly", "#newsletter-daily", "#category-politics"):
        if not browser.find(box).is_selected():
            browser.find(box).click()
    Select(browser.find("#language")).select_by_value("de")
    browser.screenshot("subscribe-filled")
    browser.submit(browser.find("main form button[type=submit]"))
    assert browser.heading() == "Check your inbox", server.said()
    assert READER in browser.text()
    browser.screenshot("subscribe-sent")
    pending = server.stored(READER)
    # the name waits with the sign-up's consent: only its own confirmation puts it on the record
    assert (pending["status"], pending["language"], pending["name"]) == ("pending", "de", None)
    assert (pending["newsletters"], pending["categories"]) == (["daily", "weekly"], ["politics"])
    assert [c["action"] for c in pending["consents"]] == ["subscribe"]
    assert pending["consents"][0]["source"] == f"{server.url}/subscribe"

    # The confirmation email, in German, leads to a page that asks before confirming.
    outbox = newsroom.settings.outbox_dir
    [notice] = notices_to(outbox, READER)
    confirm_url = link_in(notice, server, "confirm")
    assert german("Yes, subscribe me:") in notice.get_body(("plain",)).get_content()
    browser.open(confirm_url)
    assert browser.find("html").get_attribute("lang") == "de"
    assert browser.heading() == german("Confirm your subscription")
    browser.screenshot("confirm")
    assert server.stored(READER)["status"] == "pending"  # opening the link changed nothing
    browser.submit(browser.find("main form button[type=submit]"))
    assert browser.heading() == german("Your subscription is confirmed"), server.said()
    assert READER in browser.text()
    browser.screenshot("confirmed")
    confirmed = server.stored(READER)
    assert confirmed["status"] == "active" and confirmed["confirmed_at"] and confirmed["name"] == "Anna Weber"
    assert [c["action"] for c in confirmed["consents"]] == ["subscribe", "confirm"]

    # The settings link on that page: other sections, a two-week pause.
    settings_url = browser.find("main a.button-link").get_attribute("href")
    assert settings_url.startswith(f"{server.url}/preferences/")
    browser.open(settings_url)
    assert browser.heading() == german("Your newsletter settings")
    assert browser.find("#category-politics").is_selected()
    browser.screenshot("preferences")
    for box in ("#category-politics", "#category-health", "#category-culture"):
        browser.find(box).click()
    Select(browser.find("#pause_weeks")).select_by_value("2")
    browser.submit(browser.find("main form button[type=submit]"))
    assert german("Your settings are saved.") in browser.text(), server.said()
    assert (
        browser.find("#category-health").is_selected()
        and not browser.find("#category-politics").is_selected()
    )
    browser.screenshot("preferences-saved")
    changed = server.stored(READER)
    assert sorted(changed["categories"]) == ["culture", "health"]
    assert changed["newsletters"] == ["daily", "weekly"]
    pauses = {s["newsletter"]: s["paused_until"] for s in changed["subscriptions"]}
    assert all(pauses.values()), pauses
    ends = datetime.fromisoformat(pauses["weekly"])
    assert timedelta(days=13) < ends - datetime.now(UTC) <= timedelta(weeks=2)
    assert i18n.format_date(ends, "de", newsroom.settings.zone) in browser.text()  # "13. Dezember 2026"

    # Leaving the weekly from its unsubscribe link, then coming back.
    subscriber_id = _subscriber_id(newsroom, READER)
    unsubscribe_url = Links(server.url, SECRET["NEWSLETTER_SECRET_KEY"].encode()).unsubscribe(
        subscriber_id, "weekly"
    )
    browser.open(unsubscribe_url)
    assert browser.heading() == german("Unsubscribe")
    assert german("Weekly digest") in browser.text()  # the newsletter by its German title
    browser.screenshot("unsubscribe")
    assert server.stored(READER)["newsletters"] == ["daily", "weekly"]  # a GET changes nothing
    browser.submit(browser.find("main form button[type=submit]"))
    assert browser.heading() == german("You have unsubscribed"), server.said()
    assert READER in browser.text()
    browser.screenshot("unsubscribed")
    left = server.stored(READER)
    assert (left["status"], left["newsletters"], left["left"]) == ("active", ["daily"], ["weekly"])
    weekly = next(s for s in left["subscriptions"] if s["newsletter"] == "weekly")
    assert weekly["status"] == "unsubscribed" and weekly["source"] == "page"
    browser.submit(browser.find("form[action$='/again'] button"))
    assert browser.heading() == german("Welcome back"), server.said()
    browser.screenshot("resubscribed")
    back = server.stored(READER)
    assert (back["newsletters"], back["left"]) == (["daily", "weekly"], [])
    assert [c["action"] for c in back["consents"]][-2:] == ["unsubscribe", "resubscribe"]

    # Nothing the pages did broke their own Content Security Policy, and nothing failed.
    assert browser.csp_violations() == []
    assert "Traceback" not in server.log.read_text()
    # The check can see a violation: an image from elsewhere is refused (img-src 'self').
    browser.driver.execute_script(
        "const image = document.createElement('img');"
        "image.src = 'https://elsewhere.example/pixel.png'; document.body.appendChild(image);"
    )
    deadline = time.monotonic() + 10
    while not browser.csp_violations() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert browser.csp_violations(), "a refused image did not show in the console: the check sees nothing"


def _subscriber_id(runtime, address: str) -> int:
    with runtime.factory() as session:
        return session.scalars(select(Subscriber.id).where(Subscriber.email == address)).one()
