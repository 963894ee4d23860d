"""The checks before an edition goes, on the next edition (the one `preview` and `send` mean) as
readers would get it: every article link (and each link of the editor's notes) answers, images
carry alt text, each variant stays within Gmail's clipping limit, SpamAssassin's local score, and
the List-Unsubscribe headers the real message builder writes. A prepared edition keeps its last
checklist; a draft is prepared in a transaction rolled back, so checking it writes nothing.
"""

from __future__ import annotations

import email
import email.policy
import logging
import mailbox
import os
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter import notes
from newsletter.editions import checks
from newsletter.editions.checks import Answer, Check, Checklist, Copy, SpamScore
from newsletter.editions.compose import Composer, Markers
from newsletter.editions.edition import EditionInfo, draft, next_slot, open_edition
from newsletter.editions.offer import edition_notes
from newsletter.editions.personalize import Personalizable, Reader
from newsletter.editions.prepare import prepare
from newsletter.notes import note_for
from newsletter.sending.batches import variant_template
from newsletter.services import audit
from newsletter.services.alerts import alert
from newsletter.services.editions import grace
from newsletter.settings import FetchSettings, Settings
from newsletter.store.db import reading, unit_of_work
from newsletter.store.models import Article, Edition, Variant, VariantArticle
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import EditionStatus
from newsletter.subscribers.links import Links
from newsletter.text import display_url, printable

if TYPE_CHECKING:  # the HTTP client is imported where links are checked, not by every send
    import httpx

log = logging.getLogger("newsletter.checks")
# `held_by` of the hold `hold_on_failed_checks` puts on an edition just prepared.
HOLDER = "checks"
# Links checked at once, and the most one link may take, whole exchange (at most the fetch timeout).
LINK_WORKERS = 8
LINK_SECONDS = 10.0
ACCEPT = "text/html,application/xhtml+xml,*/*;q=0.8"
# SpamAssassin takes a second or more a message: the largest variants are the likeliest to trip it.
SPAM_VARIANTS = 5
SPAM_SECONDS = 120
# The header that says which of the messages given to SpamAssassin an answer is.
PLACE = "X-Newsletter-Check-Place"
# Who a checked copy is addressed to: its headers and scores are a reader's, its address nobody's.
READER = "reader@example.com"
# What an alert lists of a failed check.
ALERT_DETAILS = 10


def run(runtime: Runtime, newsletter: str, now: datetime, links: bool = True) -> Checklist:
    """Check the next edition; a prepared one keeps the checklist (`last` shows it again).
    `links=False` leaves the article links unfetched (the check says skipped)."""
    settings = runtime.settings
    with runtime.factory() as session, session.begin() as transaction:
        try:
            slot = next_slot(session, settings, newsletter, now, grace(settings))
            info = EditionInfo.of(draft(session, settings, newsletter, slot))
            edition = open_edition(session, settings, newsletter, slot)
            prepare(session, settings, edition, Composer(settings.templates_path()))  # a prepared one stays
            copies, messages = variant_copies(session, settings, edition)
            urls = sorted({*_article_urls(session, edition.id), *_note_urls(session, settings, edition)})
            pictured = _articles_with_images(session, edition.id)
        finally:
            transaction.rollback()  # a draft's preparation was only to see it
    answers = _answers(urls, settings.fetch) if links else None
    checklist = Checklist(
        info,
        [
            checks.links(answers)
            if answers is not None
            else Check("links", "skipped", "skipped: links were not fetched (--no-links)"),
            checks.images(copies, pictured),
            checks.size(copies),
            _spam(copies, messages),
            checks.unsubscribe(copies),
        ],
        now,
    )
    if info.status != EditionStatus.DRAFT:
        with unit_of_work(runtime.factory) as session:
            row = session.get_one(Edition, info.id)
            row.checks, row.checked_at = checklist.to_json(), now
    log.info(
        "the %s edition of %s checked: %s",
        newsletter,
        info.slot,
        ", ".join(f"{c.name} {c.status}" for c in checklist.checks),
    )
    return checklist


def last(runtime: Runtime, newsletter: str, now: datetime) -> Checklist | None:
    """The next edition's last checklist, kept since it was prepared; None when none was."""
    settings = runtime.settings
    with reading(runtime.factory) as session:
        edition = draft(
            session, settings, newsletter, next_slot(session, settings, newsletter, now, grace(settings))
        )
        if edition.checks is None:
            return None
        return replace(Checklist.from_json(edition.checks), edition=EditionInfo.of(edition))


def hold(edition: Edition, now: datetime) -> None:
    """Hold an edition in the transaction that prepares it, until `settle` finds its checks
    pass: a crash in between leaves it held, never sent unchecked. An editor's own hold stays
    theirs (`settle` lifts only this one)."""
    if edition.held_by != HOLDER and edition.waiting("auto") is not None:
        return
    edition.held_at, edition.held_by = now, HOLDER


def settle(runtime: Runtime, newsletter: str, edition_id: int, now: datetime) -> str | None:
    """Run the checks on the edition `hold` held at `now`: when they all pass, lift that hold
    (unless an editor has held it since, or a change made meanwhile was held for its own
    checks); else keep it, record it in the audit log and tell the operators. Why it stays
    held, or None."""
    checklist = run(runtime, newsletter, now)
    failed = checklist.failed
    with unit_of_work(runtime.factory) as session:
        edition = session.get_one(Edition, edition_id)
        slot = edition.slot
        if failed:
            audit.record(
                session,
                "checks failed",
                now,
                target=f"{newsletter} {slot}",
                detail={"failed": [c.name for c in failed]},
            )
        elif edition.held_by == HOLDER and edition.held_at == now:
            edition.held_at = edition.held_by = None
    if not failed:
        return None
    lines = []
    for check in failed:
        lines += [f"{check.title}: {check.summary}", *check.details[:ALERT_DETAILS]]
    lines.append("fix what is wrong, or accept it, and release it: `newsletter edition release`")
    alert(runtime, f"the {newsletter} edition of {slot} is held: its checks failed", lines)
    return f"held by checks ({', '.join(c.name for c in failed)} failed)"


def answer(client: httpx.Client, url: str, settings: FetchSettings) -> Answer:
    """How one link answers: HEAD, or GET where HEAD is refused, redirects followed hop by hop
    through the client's address guard; no body is read. The whole exchange ends by the fetch
    timeout (at most LINK_SECONDS)."""
    from newsletter.ingest.fetch import _DEADLINE

    if not url.lower().startswith(("http://", "https://")):
        return Answer(url, problem="not a web link (http or https)")
    seconds = min(settings.timeout_seconds, LINK_SECONDS)
    deadline = _DEADLINE.set(time.monotonic() + seconds)  # fetch's own: the guard's connections end by it
    try:
        found = _follow(client, url, "HEAD", settings, seconds)
        if found.status is not None and found.status >= 400:  # many servers refuse HEAD: GET decides
            found = _follow(client, url, "GET", settings, seconds)
        return found
    finally:
        _DEADLINE.reset(deadline)


def _follow(client: httpx.Client, url: str, method: str, settings: FetchSettings, seconds: float) -> Answer:
    """The last answer to `method` on `url`, each hop connecting through the guard."""
    import httpx

    from newsletter.ingest.fetch import RefusedAddress

    hops = 0
    where = url
    try:
        request = client.build_request(method, url, headers={"Accept": ACCEPT})
        while True:
            where = str(request.url)
            response = client.send(request, stream=True)
            response.close()
            if response.next_request is None:
                status = response.status_code
                said = f"HTTP {status} {printable(response.reason_phrase)}".strip()
                return Answer(url, status, said if status >= 400 else None)
            if hops == settings.max_redirects:
                return Answer(url, status=response.status_code, problem=f"more than {hops} redirects")
            hops += 1
            request = response.next_request
    except RefusedAddress as exc:
        host = exc.host if exc.host == exc.address else f"{exc.host} ({exc.address})"
        via = f"redirected to {display_url(where)}, and " if hops else ""
        return Answer(
            url, problem=f"refused: {via}{host} is not a public address (fetch.allow_private is off)"
        )
    except httpx.TimeoutException:
        return Answer(url, problem=f"timed out after {seconds:g} s")
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return Answer(url, problem=f"{type(exc).__name__}: {printable(str(exc))}")


def _answers(urls: list[str], settings: FetchSettings) -> list[Answer]:
    """Every link's answer, a few at a time, through one client that keeps the fetch rules."""
    from newsletter.ingest.fetch import make_client

    with make_client(settings) as client, ThreadPoolExecutor(LINK_WORKERS) as pool:
        return list(pool.map(lambda url: answer(client, url, settings), urls))


def variant_copies(session: Session, settings: Settings, edition: Edition) -> tuple[list[Copy], list[bytes]]:
    """Each variant of a prepared edition as a reader gets it, and its whole message as the
    real message builder makes it (the links are dummies), largest first."""
    newsletter = edition.newsletter
    links = Links(str(settings.public_url), None)
    reader = Reader(None, links.unsubscribe(0, newsletter), links.preferences(0))
    copies: list[Copy] = []
    messages: list[bytes] = []
    rows = session.scalars(select(Variant).where(Variant.edition_id == edition.id).order_by(Variant.id))
    for row in rows:
        markers = Markers(row.marker)
        template = variant_template(settings, newsletter, row)
        theirs = replace(reader, language=row.language)
        data = template.render(READER, None, theirs, "check").data
        headers = email.message_from_bytes(data, policy=email.policy.default)
        label = f"{row.language}: {row.categories.replace(',', ', ') or 'no section'}"
        html = Personalizable(row.html, True, markers).fill(theirs.values())
        copies.append(Copy(label, html, {name: str(value) for name, value in headers.items()}))
        messages.append(data)
    order = sorted(range(len(copies)), key=lambda i: -len(copies[i].html))
    return [copies[i] for i in order], [messages[i] for i in order]


def _article_urls(session: Session, edition_id: int) -> list[str]:
    """The edition's articles' own addresses (not the tracked /c/ links), each once."""
    return sorted(
        set(
            session.scalars(
                select(Article.url)
                .join(VariantArticle, VariantArticle.article_id == Article.id)
                .join(Variant, Variant.id == VariantArticle.variant_id)
                .where(Variant.edition_id == edition_id)
            )
        )
    )


def _note_urls(session: Session, settings: Settings, edition: Edition) -> list[str]:
    """The links of the editor's notes the edition's variants carry."""
    languages = set(session.scalars(select(Variant.language).where(Variant.edition_id == edition.id)))
    site, own = settings.site.language, edition_notes(session, edition)
    standing = settings.newsletter(edition.newsletter).standing_notes(site)
    found = {note_for(language, site, own, standing) for language in languages}
    return [url for note in found if note for url in notes.links(note)]


def _articles_with_images(session: Session, edition_id: int) -> int:
    """How many of the edition's articles have an image (whether a variant shows it or not)."""
    return (
        session.scalar(
            select(func.count(func.distinct(Article.id)))
            .join(VariantArticle, VariantArticle.article_id == Article.id)
            .join(Variant, Variant.id == VariantArticle.variant_id)
            .where(Variant.edition_id == edition_id, Article.image_url.is_not(None))
        )
        or 0
    )


def _spam(copies: list[Copy], messages: list[bytes]) -> Check:
    """SpamAssassin's local rules (`-L`: no network) on the largest variants' messages, all in
    one run over an mbox of them: starting SpamAssassin costs seconds, scoring one little."""
    binary = shutil.which("spamassassin")
    if binary is None:
        return Check("spam", "skipped", "skipped: spamassassin is not installed")
    scored = copies[:SPAM_VARIANTS]
    try:
        with tempfile.TemporaryDirectory(prefix="newsletter-spam-") as home:
            answers = _scored(binary, Path(home), messages[: len(scored)])
            scores = [_score(copy, answer) for copy, answer in zip(scored, answers, strict=True)]
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return Check("spam", "skipped", f"skipped: spamassassin did not answer: {printable(str(exc))}")
    return checks.spam(scores, len(copies))


def _scored(binary: str, home: Path, messages: list[bytes]) -> list[mailbox.mboxMessage]:
    """Each message as SpamAssassin gives it back, headers added, in the order given. It walks
    an mbox in an order of its own, so each message carries its place in a header of ours."""
    Path(home, "user_prefs").touch()  # the caller's own preferences must not change the scores
    given = mailbox.mbox(home / "given.mbox")
    for place, message in enumerate(messages):
        given.add(f"{PLACE}: {place}\r\n".encode() + message)
    given.close()
    done = subprocess.run(
        [
            binary,
            "--mbox",  # every message of the file, each written out in turn
            "-L",  # local tests only: no DNS, no checksum networks
            "-x",  # create no per-user files
            f"--prefspath={home / 'user_prefs'}",
            "--cf=use_bayes 0",  # Bayes says what this machine was trained on, not what the message is
            "--cf=report_safe 0",
            "--cf=add_header all Tests _TESTSSCORES(,)_",
            str(home / "given.mbox"),
        ],
        capture_output=True,
        timeout=SPAM_SECONDS,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(home)},
        check=True,
    )
    Path(home, "scored.mbox").write_bytes(done.stdout)
    placed = {str(answer[PLACE]).strip(): answer for answer in mailbox.mbox(home / "scored.mbox")}
    try:
        return [placed[str(place)] for place in range(len(messages))]
    except KeyError:
        raise ValueError(f"it gave back {len(placed)} of {len(messages)} messages") from None


def _score(copy: Copy, answered: mailbox.mboxMessage) -> SpamScore:
    status = re.search(
        r"score=(-?[\d.]+) required=(-?[\d.]+)", " ".join(str(answered["X-Spam-Status"]).split())
    )
    if status is None:
        raise ValueError("its answer has no X-Spam-Status")
    tests = "".join(str(answered["X-Spam-Tests"] or "").split())
    rules = {
        rule: float(points)
        for rule, _, points in (test.partition("=") for test in tests.split(","))
        if tests not in ("", "none")
    }
    return SpamScore(copy.label, float(status[1]), float(status[2]), rules)
