"""The editors' page of the next edition (issue #13, parts 2, 3, 4, 6 and 7), `newsletter serve`'s
app in this process: its variants and frames, a reader's own view (the very HTML the outbox then
holds), a pin that goes first in its section of the sent edition, a subject for one language,
a hold and a release, a test to the editor alone; nothing of it without a session."""

from __future__ import annotations

import email
import html
import re
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import Message
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from newsletter.editions.slots import slot_time
from newsletter.services import audit, editions, editors, schedule, sending, upcoming
from newsletter.store.db import unit_of_work
from newsletter.store.models import (
    Article,
    Delivery,
    Edition,
    Subscriber,
    Suppression,
    Variant,
    VariantArticle,
)
from newsletter.store.statuses import (
    DeliveryStatus,
    PickAction,
    SubscriberStatus,
    SubscriptionStatus,
    SuppressionReason,
)
from newsletter.subscribers.addresses import normalize_email
from newsletter.web.signin import TESTS_PER_WINDOW
from tests.conftest import WEEKLY_NOV_23, ZONE
from tests.support.cli import Ran, run_cli
from tests.support.editors import ED, shut_out, signed_in
from tests.support.outbox import ACCOUNT_LINK, placeholders
from tests.support.upcoming import desk_of, in_the_next_window, prepare
from tests.support.waiting import at_the_store, until
from tests.support.web import COMMAND_ENV, Forms, Site, serve

READER = "marc.dubois@example.org"  # in subscribers/demo-subscribers.csv


@pytest.fixture
def desk(newsroom, tmp_path) -> Iterator[Site]:
    """The sample newsroom in the next weekly edition's window, one editor, and the pages."""
    yield from desk_of(newsroom, tmp_path)


def page(client: httpx.Client, path: str = "/editor/upcoming/weekly") -> httpx.Response:
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    return answer


def post(client: httpx.Client, to: str, **fields: str) -> httpx.Response:
    form = Forms(page(client).text).form(to)
    return client.post(to, data={"csrf": form["csrf"], **fields})


def outbox(site: Site) -> list[Message]:
    folder = Path(site.runtime.settings.outbox_dir)
    return [email.message_from_bytes(p.read_bytes()) for p in sorted(folder.glob("*/*.eml"))]


def html_of(message: Message) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/html")
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(part.get_content_charset() or "utf-8")


def send_now(site: Site) -> None:
    result = site.cli("send", "--now", "--force", "--at", site.clock().isoformat())
    assert result.returncode == 0, result.stderr


def test_no_page_or_action_without_a_session(desk) -> None:
    with desk.client() as client:
        for path in (
            "/editor/upcoming/weekly",
            "/editor/upcoming/weekly/variants/1/frame",
            "/editor/upcoming/weekly/variants/1/text",
            "/editor/upcoming/weekly/readers/1",
            "/editor/upcoming/weekly/readers/1/frame",
        ):
            shut_out(client.get(path))
        for action in ("pick", "override", "decide", "test", "reader"):
            shut_out(client.post(f"/editor/upcoming/weekly/{action}", data={"csrf": "x"}))


def test_the_variants_side_by_side_in_sandboxed_frames(desk) -> None:
    with desk.client() as client:
        signed_in(client)
        draft = page(client)
        assert "Not composed yet" in draft.text
        assert "frame-src 'self'" in draft.headers["content-security-policy"]
        assert draft.headers["x-frame-options"] == "DENY"
        prepare(desk)
        shown = page(client)
        rows = shown.text.count("?variant=")
        assert rows >= 2, shown.text  # the sample's readers take several digests
        assert "Before clipping" in shown.text and " KB" in shown.text
        frames = [line for line in shown.text.splitlines() if "<iframe" in line]
        assert len(frames) == 2 and all("sandbox " in f for f in frames)
        assert 'width="800"' in frames[0] and 'width="390"' in frames[1]
        source = frames[0].split('src="')[1].split('"')[0]
        framed = client.get(source)
        assert framed.status_code == 200 and "<html" in framed.text.lower()
        policy = framed.headers["content-security-policy"]
        assert "sandbox" in policy and "frame-ancestors 'self'" in policy and "script" not in policy
        assert framed.headers["x-frame-options"] == "SAMEORIGIN"
        text = client.get(source.replace("/frame", "/text"))
        assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
        assert client.get("/editor/upcoming/weekly/variants/999999/frame").status_code == 404
        assert client.get("/editor/upcoming/nosuch").status_code == 404
        assert client.get("/editor/upcoming/weekly/variants/99999999999999999999/frame").status_code in (
            404,
            422,
            400,
        )


def test_a_readers_view_is_what_the_outbox_then_holds(desk) -> None:
    with desk.client() as client:
        signed_in(client)
        found = post(client, "/editor/upcoming/weekly/reader", email=READER.upper())
        assert found.status_code == 303
        path = found.headers["location"]
        assert READER not in path  # by id: no address in a URL or a log
        view = page(client, path)
        assert READER in view.text and "Why each article is in or out" in view.text
        assert "already sent" in view.text or "Trending #1" in view.text or "in " in view.text
        prepare(desk)
        before = client.get(path + "/frame")
        assert before.status_code == 200
        send_now(desk)
        sent = [m for m in outbox(desk) if normalize_email(m["To"].split("<")[-1].strip(">")) == READER]
        assert len(sent) == 1
        # MIME lines end in CRLF; the view's links to the reader's account are placeholders.
        assert placeholders(html_of(sent[0]).replace("\r\n", "\n")) == before.text
        missing = post(client, "/editor/upcoming/weekly/reader", email="nobody.at.all@example.org")
        assert missing.status_code == 409 and "no subscriber" in missing.text


@pytest.mark.both_databases
def test_an_editor_sees_only_the_editions_readers_and_no_link_to_their_account(desk) -> None:
    """Issue #22, 4: the readers' pages open only for readers the edition would mail (not a
    pending sign-up, a reader who left, one of the daily only or a suppressed address), and what
    they show carries placeholder links, never one that opens or changes the reader's account."""
    with unit_of_work(desk.runtime.factory) as session:
        session.add(Suppression(email="anna.keller@example.com", reason=SuppressionReason.BOUNCE))
    with unit_of_work(desk.runtime.factory) as session:
        everyone = session.scalars(select(Subscriber)).all()
        suppressed = set(session.scalars(select(Suppression.email)))
        mailed = {
            s.id
            for s in everyone
            if s.status == SubscriberStatus.ACTIVE
            and s.email not in suppressed
            and any(n.newsletter == "weekly" and n.status == SubscriptionStatus.ACTIVE for n in s.newsletters)
        }
        ids = {s.email: s.id for s in everyone}
    hidden = ["new.signup@example.com", "old.reader@example.com", "eva.lindqvist@example.se"]
    assert all(ids[e] not in mailed for e in [*hidden, "anna.keller@example.com"]) and ids[READER] in mailed
    with desk.client() as client:
        signed_in(client)
        for email in [*hidden, "anna.keller@example.com", "nobody.at.all@example.org"]:
            found = post(client, "/editor/upcoming/weekly/reader", email=email)
            assert found.status_code == 409 and "no subscriber" in found.text, email
        for stage in ("draft", "prepared"):
            seen = 0
            for subscriber_id in sorted(ids.values()):
                shown = client.get(f"/editor/upcoming/weekly/readers/{subscriber_id}")
                framed = client.get(f"/editor/upcoming/weekly/readers/{subscriber_id}/frame")
                if subscriber_id not in mailed:
                    assert shown.status_code == 409 and framed.status_code == 404, (stage, subscriber_id)
                    assert "@" not in shown.text.split("<main")[-1].replace(ED, ""), shown.text
                    test = post(client, "/editor/upcoming/weekly/test", reader=str(subscriber_id))
                    assert test.status_code == 409
                    continue
                assert shown.status_code == 200, (stage, subscriber_id, shown.text)
                if framed.status_code == 404:  # nothing new for this reader
                    continue
                for text in (framed.text, shown.text):
                    links = ACCOUNT_LINK.findall(html.unescape(text))
                    assert links and {token for _purpose, token in links} == {"PREVIEW"}, links
                seen += 1
            assert seen >= 3, stage
            prepare(desk)
    assert outbox(desk) == []  # no test went to anyone


def test_a_pin_on_the_page_goes_first_in_its_section_and_is_logged(desk) -> None:
    prepare(desk)  # a prepared edition is prepared again by a pick
    now = desk.clock()
    shown = editors.preview(desk.runtime, "weekly", now, ["politics"], "en")
    section = dict(shown.plan.sections)["politics"]
    last = section[-1]
    assert section[0] != last
    with desk.client() as client:
        signed_in(client)
        answer = post(client, "/editor/upcoming/weekly/pick", article=str(last), action="pin")
        assert answer.status_code == 303 and "done=pin" in answer.headers["location"]
        assert "pinned #1" in page(client).text
        again = editors.preview(desk.runtime, "weekly", now, ["politics"], "en")
        assert dict(again.plan.sections)["politics"][0] == last
        assert any(d.article_id == last and "(pinned)" in d.reason for d in again.plan.decisions)
        refused = client.post("/editor/upcoming/weekly/pick", data={"article": str(last), "action": "pin"})
        assert refused.status_code == 403
    send_now(desk)
    title = html.escape(shown.titles[last], quote=False)
    others = [html.escape(shown.titles[i], quote=False) for i in section if i != last]
    politics = [m for m in outbox(desk) if title in html_of(m) and any(o in html_of(m) for o in others)]
    assert politics
    for message in politics:
        body = html_of(message)
        assert body.index(title) < min(body.index(o) for o in others if o in body)
    entries = [(e.action, e.editor, e.detail) for e in audit.entries(desk.runtime, 20)]
    assert ("edition pin", ED, {"article": last}) in entries


@pytest.mark.both_databases
def test_a_pick_given_as_the_edition_is_prepared_is_in_it(newsroom, monkeypatch) -> None:
    """The preparation at the slot and an editor's exclusion take turns on the edition: the
    exclusion is in what is prepared, never lost under it."""
    at = WEEKLY_NOV_23 + timedelta(minutes=2)
    planned = [i for _section, ids in editors.preview(newsroom, "weekly", at).plan.sections for i in ids]
    editors.pick_article(newsroom, "weekly", str(planned[1]), PickAction.EXCLUDE, at, ED)  # the draft exists
    prepared: list[int] = []
    preparing = threading.Thread(
        target=lambda: prepared.append(sending.prepare_next(newsroom, "weekly", at, force=True)[0])
    )
    picking = editors.pick

    def prepared_meanwhile(*args) -> None:  # the exclusion is made; the slot's preparation starts
        picking(*args)
        preparing.start()
        until(lambda: at_the_store(preparing, newsroom))  # done, or waiting for the editor's transaction

    monkeypatch.setattr(editors, "pick", prepared_meanwhile)
    editors.pick_article(newsroom, "weekly", str(planned[0]), PickAction.EXCLUDE, at, ED)
    preparing.join(60)
    with newsroom.factory() as session:
        carried = set(
            session.scalars(
                select(VariantArticle.article_id)
                .join(Variant, Variant.id == VariantArticle.variant_id)
                .where(Variant.edition_id == prepared[0])
            )
        )
    assert carried and not carried & set(planned[:2])


def test_an_article_is_picked_by_its_whole_id_or_address(desk) -> None:
    with desk.runtime.factory() as session:
        url = session.scalars(select(Article.url).where(Article.id == 12)).one()
    with desk.client() as client:
        signed_in(client)
        for article in ("0" * 19 + "12", url):  # never cut to another article's id, or no article
            answer = post(client, "/editor/upcoming/weekly/pick", article=article, action="exclude")
            assert answer.status_code == 303, answer.text
            _info, picked = editors.edition_picks(desk.runtime, "weekly", desk.clock())
            assert [(p.article_id, p.action) for p in picked] == [(12, "exclude")]
            assert (
                post(client, "/editor/upcoming/weekly/pick", article="12", action="unpick").status_code == 303
            )


@pytest.fixture
def busy_desk(newsroom, tmp_path) -> Iterator[Site]:
    """The desk with several editors at work at once."""
    yield from desk_of(newsroom, tmp_path)


@pytest.mark.both_databases
def test_a_sender_starting_while_editors_pick_sends_each_reader_once(busy_desk) -> None:
    """Editors pin and undo without pause, each pick preparing the edition again, while `send`
    starts: it is not starved of the store, and once it began no pick changes the edition
    (409, too late); every reader gets exactly one copy."""
    site = busy_desk
    editors_pick_while(site, lambda: site.cli("send", "--now", "--force", "--at", site.clock().isoformat()))


@pytest.mark.e2e
def test_a_sender_process_starting_while_editors_pick_sends_each_reader_once(busy_desk) -> None:
    """End to end: the same with `send` a process of its own, so on SQLite the pages and the
    sender meet at the store's lock between processes (a file lock, not a thread's)."""
    site = busy_desk
    editors_pick_while(
        site,
        lambda: run_cli(
            "send",
            "--now",
            "--force",
            "--at",
            site.clock().isoformat(),
            "--config",
            str(site.config),
            env=COMMAND_ENV,
            cwd=site.config.parent,
        ),
    )


def editors_pick_while(site: Site, send: Callable[[], Ran | subprocess.CompletedProcess]) -> None:
    """Three editors pick and undo without pause while `send` runs; each reader gets one copy."""
    with site.runtime.factory() as session:
        ids = session.scalars(select(Article.id).where(Article.language == "en").order_by(Article.id)).all()
    prepare(site)
    answers: list[int] = []
    stop = threading.Event()

    def editor() -> None:
        with site.client() as client:
            signed_in(client)
            token = Forms(page(client).text).form("/editor/upcoming/weekly/pick")["csrf"]
            turn = 0
            while not stop.is_set():
                action = "pin" if turn // 30 % 2 == 0 else "unpick"
                fields = {"csrf": token, "article": str(ids[turn % 30]), "action": action}
                answer = client.post("/editor/upcoming/weekly/pick", data=fields)
                assert answer.status_code == 303 or "too late" in answer.text, answer.text
                answers.append(answer.status_code)
                turn += 1

    editors_at_work = [threading.Thread(target=editor) for _ in range(3)]
    for thread in editors_at_work:
        thread.start()
    until(lambda: len(answers) >= 6)  # the editors are at it
    sent = send()
    stop.set()
    for thread in editors_at_work:
        thread.join(60)
    assert sent.returncode == 0, sent.stderr
    copies = Counter(normalize_email(m["To"].split("<")[-1].strip(">")) for m in outbox(site))
    with site.runtime.factory() as session:
        edition = session.scalars(select(Edition).order_by(Edition.slot)).first()
        assert edition is not None and edition.status == "complete"
        readers = session.scalars(
            select(Subscriber.email)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.edition_id == edition.id, Delivery.status == "sent")
        ).all()
    assert len(readers) == 9 and copies == Counter(readers)


def test_a_subject_for_one_language(desk) -> None:
    prepare(desk)
    with desk.client() as client:
        signed_in(client)
        answer = post(
            client,
            "/editor/upcoming/weekly/override",
            language="de",
            subject="Sonderausgabe {{ top.title }} <b>",
            preheader="",
        )
        assert answer.status_code == 303, answer.text
        shown = page(client).text
        assert "Sonderausgabe {{ top.title }} &lt;b&gt;" in shown  # as written, never a template
    with desk.runtime.factory() as session:
        edition = session.scalars(select(Edition).where(Edition.newsletter == "weekly")).one()
        assert edition.status == "ready"
        subjects = {v.language: v.subject for v in session.scalars(select(Variant))}
    assert subjects.get("de") == "Sonderausgabe {{ top.title }} <b>"
    assert "Sonderausgabe" not in subjects["en"]


def test_a_hold_on_the_page_keeps_it_from_its_slot_and_a_release_sends_it(desk) -> None:
    now = desk.clock()
    slot = editions.next_edition(desk.runtime, "weekly", now).edition.window_end
    with desk.client() as client:
        signed_in(client)
        assert post(client, "/editor/upcoming/weekly/decide", action="hold").status_code == 303
        assert "held by" in page(client).text
    stop = threading.Event()
    run = schedule.run_edition(desk.runtime, "weekly", slot + timedelta(minutes=1), stop)
    assert run.action == "held"
    with desk.client() as client:
        signed_in(client)
        assert post(client, "/editor/upcoming/weekly/decide", action="release").status_code == 303
    run = schedule.run_edition(desk.runtime, "weekly", slot + timedelta(hours=5), stop)
    assert run.action in ("sent", "waiting"), run
    if run.action == "waiting":  # the sample's feeds were read long before this window
        assert "feed" in (run.problem or "")
    actions = [(e.action, e.editor) for e in audit.entries(desk.runtime, 10)]
    assert ("edition hold", ED) in actions and ("edition release", ED) in actions


def test_a_test_goes_to_the_editor_alone(desk) -> None:
    with desk.client() as client:
        signed_in(client)
        answer = post(client, "/editor/upcoming/weekly/test")
        assert answer.status_code == 303 and "done=test" in answer.headers["location"]
        assert "A test was sent to your address." in page(client, answer.headers["location"]).text
    messages = outbox(desk)
    assert len(messages) == 1
    assert ED in messages[0]["To"] and messages[0]["Subject"].startswith("[TEST]")
    assert messages[0]["X-Newsletter-Test"]
    with desk.runtime.factory() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
    assert ("test send", ED) in [(e.action, e.editor) for e in audit.entries(desk.runtime, 5)]


def test_a_test_the_provider_refuses_is_said_so_and_tests_are_limited(newsroom, tmp_path, smtp_sink) -> None:
    sink, port = smtp_sink
    sink.refuse[ED] = "550 5.1.1 No such mailbox here"
    in_the_next_window(newsroom)
    smtp = {"NEWSLETTER_PROVIDER": "smtp", "NEWSLETTER_SMTP_PORT": str(port), "NEWSLETTER_SMTP_TLS": "none"}
    for site in serve(newsroom, tmp_path, env={**smtp, "NEWSLETTER_SMTP_HOST": "127.0.0.1"}):
        with site.client() as client:
            signed_in(client)
            refused = post(client, "/editor/upcoming/weekly/test")
            assert refused.status_code == 409 and "No such mailbox here" in refused.text
            del sink.refuse[ED]
            answers = [post(client, "/editor/upcoming/weekly/test") for _ in range(TESTS_PER_WINDOW)]
            assert [a.status_code for a in answers] == [303] * (TESTS_PER_WINDOW - 1) + [429]
            assert answers[-1].headers["retry-after"] == "900" and "Please wait" in answers[-1].text
    assert sink.recipients() == [ED] * (TESTS_PER_WINDOW - 1)
    outcomes = [e.detail["outcome"] for e in audit.entries(newsroom, 50) if e.action == "test send"]
    assert outcomes == ["sent"] * (TESTS_PER_WINDOW - 1) + ["failed"]


def test_picks_stay_in_sight_past_the_newest_articles_offered(newsroom, monkeypatch) -> None:
    at = WEEKLY_NOV_23 - timedelta(hours=20)
    oldest = upcoming.upcoming(newsroom, "weekly", at).offered[-1]
    assert oldest.in_window
    editors.pick_article(newsroom, "weekly", str(oldest.id), PickAction.EXCLUDE, at, ED)
    monkeypatch.setattr(upcoming, "MAX_OFFERED", 3)  # a busy week: more articles than the page lists
    offered = upcoming.upcoming(newsroom, "weekly", at).offered
    assert len(offered) == 3 and offered[0].id == oldest.id and offered[0].action == "exclude"


# A date and time on a page, and what may follow it: the zone's name (CET, CEST) or an offset.
MOMENT = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d)?( [A-Z]{3,5}\b| ?[+-]\d\d:?\d\d)?")


def bare_moments(text: str) -> list[str]:
    """Dates with a time but no zone (iso timestamps in links or frames' addresses aside)."""
    return [m.group(0) for m in MOMENT.finditer(text) if not m.group(1)]


def test_a_drafts_recipients_are_what_send_counts_and_every_time_has_its_zone(desk) -> None:
    """Issue #21, 7 and 10: a draft's recipients are counted as `send --dry-run` counts them
    (not 0), every time on the editors' pages carries its zone, and the headings read right
    whatever the newsletter's title."""
    now = desk.clock()
    rehearsal = sending.dry_run(desk.runtime, "weekly", now, ahead_ok=True, force=True)
    expected = sum(v.recipients for v in rehearsal.variants)
    skipped = rehearsal.counts.get(DeliveryStatus.SKIPPED, 0)
    slot = f"{slot_time(rehearsal.edition.slot, ZONE):%Y-%m-%d %H:%M %Z}"
    with desk.client() as client:
        signed_in(client)
        draft = page(client)
        assert expected > 0
        assert (
            f"<dt>Recipients</dt><dd>{expected}, counted now as sending would count them ({skipped} "
            in draft.text
        )
        assert f"<dt>Slot</dt><dd>{slot}</dd>" in draft.text
        assert "<h1>Weekly digest: the next edition</h1>" in draft.text
        assert "Weekly digest: next edition</a>" in draft.text  # the navigation
        prepare(desk)
        ready = page(client)
        assert f"<dt>Recipients</dt><dd>{expected}" in ready.text and "counted now" not in ready.text
        assert "<dt>Images</dt>" not in ready.text  # the sample's articles carry images
        checked = client.post(
            "/editor/checks/weekly", data={"csrf": Forms(ready.text).form("/editor/checks/weekly")["csrf"]}
        )
        assert checked.status_code == 200, checked.text
        assert "<h1>Weekly digest: checks before the next edition goes</h1>" in checked.text
        assert f"The edition of {slot}, checked " in checked.text
        reader = post(client, "/editor/upcoming/weekly/reader", email=READER)
        for action in ("hold", "release"):  # the audit log names the edition by its slot
            assert post(client, "/editor/upcoming/weekly/decide", action=action).status_code == 303
        send_now(desk)
        pages = {
            path: client.get(path)
            for path in (
                "/editor/",
                "/editor/upcoming/weekly",
                "/editor/checks/weekly",
                reader.headers["location"],
                "/editor/editions",
                *(f"/editor/editions/{e.edition.id}" for e in editions.editions(desk.runtime, 5)),
            )
        }
    for path, shown in pages.items():
        assert shown.status_code == 200, (path, shown.text)
        assert bare_moments(html.unescape(shown.text)) == [], path
    assert f"Weekly digest: the edition of {slot}" in pages["/editor/editions"].text
    assert f"<td>edition hold</td><td>weekly {slot}</td>" in pages["/editor/"].text
    assert bare_moments("weekly 2026-11-23T07:00, 2026-11-23 07:00 CET") == ["2026-11-23T07:00"]


def test_the_page_says_when_no_digest_carries_an_image(desk) -> None:
    """Issue #21, 12: a prepared edition whose digests show no image says so on the page."""
    edition_id = prepare(desk)
    with desk.client() as client:
        signed_in(client)
        assert "<dt>Images</dt>" not in page(client).text
        with unit_of_work(desk.runtime.factory) as session:  # as if none of its articles had one
            for variant in session.scalars(select(Variant).where(Variant.edition_id == edition_id)):
                variant.html = re.sub(r"<img[^>]*>", "", variant.html)
        shown = page(client).text
    assert '<dt>Images</dt><dd class="warn">None: no digest of this edition carries an image.</dd>' in shown
