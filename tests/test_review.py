"""The editors' review (issue #13, part 6): `review_minutes` before its slot the scheduled job
composes the edition, whose window closes then (a later article goes in the next edition, once),
and mails each editor a link to it, once per edition however many schedulers ask; the edition
still goes only at its slot, held or waiting for approval as the editors decide. An editor who
follows the link signed out comes back to it after signing in, and only to a page of ours."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from urllib.parse import quote

import pytest
from sqlalchemy import select

from newsletter.cli.output import edition_line
from newsletter.editions.edition import EditionInfo
from newsletter.services import accounts, editors, schedule, sending, timetable
from newsletter.services.sending import NotDue
from newsletter.store.models import Subscriber, Variant, VariantArticle
from newsletter.web.signin import HOME, return_path
from tests.conftest import WEEKLY_NOV_23, ZONE, free_port
from tests.support.clock import NOW
from tests.support.editions import edition_of, publish
from tests.support.editors import PASSWORD, login_form
from tests.support.schedule import mails, runner
from tests.support.web import Forms, serve

EDITORS = ["ed.itor@example.com", "second.editor@example.org"]
COMPOSED = WEEKLY_NOV_23 - timedelta(minutes=30)
FIRST = "2026-11-23T07:00"
UPCOMING = "/editor/upcoming/weekly"
OUTSIDE = ["https://evil.example/", "//evil.example", "/\\evil", "javascript:alert(1)"]


@pytest.fixture
def review(newsroom):
    """The sample newsroom with a 60-minute review of the weekly, and two editors."""
    settings = newsroom.settings
    weekly = settings.newsletters["weekly"].model_copy(update={"review_minutes": 60})
    newsroom.settings = settings.model_copy(
        update={"newsletters": {**settings.newsletters, "weekly": weekly}}
    )
    for address in EDITORS:
        accounts.add(newsroom, address, PASSWORD, NOW)
    return newsroom


def requiring_approval(runtime) -> None:
    settings = runtime.settings
    weekly = settings.newsletters["weekly"].model_copy(update={"approval": "required"})
    runtime.settings = settings.model_copy(update={"newsletters": {**settings.newsletters, "weekly": weekly}})


def articles_of(runtime, edition_id: int) -> set[int]:
    with runtime.factory() as session:
        return set(
            session.scalars(
                select(VariantArticle.article_id)
                .join(Variant, Variant.id == VariantArticle.variant_id)
                .where(Variant.edition_id == edition_id)
            )
        )


def reviews(runtime) -> list:
    return [m for m in mails(runtime) if m["Subject"].startswith("[review]")]


@pytest.mark.both_databases
def test_composed_before_its_slot_mailed_once_and_sent_at_its_slot(review) -> None:
    assert timetable.review_time(review.settings, "weekly", WEEKLY_NOV_23 - timedelta(hours=3)) == (
        WEEKLY_NOV_23 - timedelta(hours=1)
    )
    assert schedule.review_due(review, "weekly", WEEKLY_NOV_23 - timedelta(minutes=90)).action == "nothing"
    job = runner(review, COMPOSED)
    assert job.review("weekly", reschedule=False).action == "composed"
    first = edition_of(review, FIRST)
    assert first.status == "ready" and first.window_end == COMPOSED and first.review_mailed_at == COMPOSED
    shown = edition_line(EditionInfo.of(first), ZONE)
    assert shown.startswith("weekly edition of 2026-11-23 07:00 CET, window ") and shown.endswith(
        "to 2026-11-23 06:30 CET (edition 1, ready)"
    )
    sent = reviews(review)
    assert sorted(m["To"] for m in sent) == EDITORS
    message = sent[0]
    assert (
        message["Subject"] == "[review] weekly edition of 2026-11-23 07:00 CET: goes at its slot unless held"
    )
    body = message.get_body(("plain",)).get_content()
    assert f"{str(review.settings.public_url).rstrip('/')}{UPCOMING}" in body
    assert "variant(s)" in body and "9 pending" in body and "Top headlines:" in body
    with review.factory() as session:
        readers = session.scalars(select(Subscriber.email)).all()
    raw = b"".join(m.as_bytes() for m in sent).decode()
    assert readers and not [address for address in readers if address in raw]  # no reader's address

    # Later refreshes mail nobody again; the edition does not go before its slot.
    late = publish(review, WEEKLY_NOV_23 - timedelta(minutes=20))  # after the window closed
    runner(review, WEEKLY_NOV_23 - timedelta(minutes=15)).refresh()
    assert len(reviews(review)) == 2 and edition_of(review, FIRST).status == "ready"
    with pytest.raises(NotDue):
        sending.send(review, "weekly", WEEKLY_NOV_23 - timedelta(minutes=10))
    run = runner(review, WEEKLY_NOV_23 + timedelta(minutes=1)).edition("weekly", reschedule=False)
    assert run.action == "sent" and run.report and run.report.status == "complete"
    assert late not in articles_of(review, run.report.edition_id)

    # The late article opens the next edition's window: in it, once, and nothing of the first.
    after = WEEKLY_NOV_23 + timedelta(minutes=2)
    nxt = editors.preview(review, "weekly", after, categories=["politics"])
    assert nxt.edition.slot == "2026-11-30T07:00" and nxt.edition.window_start == COMPOSED
    assert nxt.plan.article_ids == [late]
    job = runner(review, datetime(2026, 11, 30, 6, 30, tzinfo=ZONE))
    assert job.review("weekly", reschedule=False).action == "composed"
    second = edition_of(review, "2026-11-30T07:00")
    assert articles_of(review, second.id) == {late} and len(reviews(review)) == 4


@pytest.mark.both_databases
@pytest.mark.parametrize("drafted", [False, True])
def test_two_schedulers_mail_each_editor_once(review, drafted: bool) -> None:
    if drafted:  # the edition's row exists already: the schedulers meet on it, not on its creation
        editors.decide(review, "weekly", "approve", COMPOSED - timedelta(hours=1), EDITORS[0])
    runs: list[str] = []
    jobs = [runner(review, COMPOSED), runner(review, COMPOSED + timedelta(seconds=1))]
    threads = [
        threading.Thread(target=lambda job=job: runs.append(job.review("weekly", reschedule=False).action))
        for job in jobs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(runs) == ["composed", "nothing"]
    assert sorted(m["To"] for m in reviews(review)) == EDITORS


def test_with_approval_required_it_waits_for_an_editor(review) -> None:
    requiring_approval(review)
    assert runner(review, COMPOSED).review("weekly", reschedule=False).action == "composed"
    assert {m["Subject"] for m in reviews(review)} == {
        "[review] weekly edition of 2026-11-23 07:00 CET: waits for your approval"
    }
    at_slot = runner(review, WEEKLY_NOV_23 + timedelta(minutes=1))
    run = at_slot.edition("weekly", reschedule=False)
    assert run.action == "held" and "approval" in (run.problem or "")
    assert edition_of(review, FIRST).status == "ready"
    editors.decide(review, "weekly", "approve", WEEKLY_NOV_23 + timedelta(minutes=2), EDITORS[0])
    run = at_slot.edition("weekly", reschedule=False)
    assert run.action == "sent" and run.report and run.report.status == "complete"


def test_a_hold_during_the_review_keeps_it_from_going(review) -> None:
    runner(review, COMPOSED).review("weekly", reschedule=False)
    held = editors.decide(review, "weekly", "hold", COMPOSED + timedelta(minutes=5), EDITORS[1])
    assert held.edition.slot == FIRST and held.waiting == f"held by {EDITORS[1]}"
    job = runner(review, WEEKLY_NOV_23 + timedelta(minutes=1))
    assert job.edition("weekly", reschedule=False).action == "held"
    assert edition_of(review, FIRST).status == "ready"
    editors.decide(review, "weekly", "release", WEEKLY_NOV_23 + timedelta(minutes=3), EDITORS[1])
    assert job.edition("weekly", reschedule=False).action == "sent"


def test_composed_early_and_not_sent_within_the_grace_is_missed(review) -> None:
    week_before = WEEKLY_NOV_23 - timedelta(days=7)
    assert (
        runner(review, week_before + timedelta(minutes=1)).edition("weekly", reschedule=False).action
        == "sent"
    )
    runner(review, COMPOSED).review("weekly", reschedule=False)
    late = runner(review, WEEKLY_NOV_23 + timedelta(hours=5))  # the scheduler was down at the slot
    assert late.edition("weekly", reschedule=False).action == "missed"
    assert edition_of(review, FIRST).status == "missed"
    nxt = editors.preview(review, "weekly", WEEKLY_NOV_23 + timedelta(hours=5), categories=["politics"])
    assert nxt.edition.window_start == week_before  # the missed edition's articles go with the next


def test_a_review_mail_that_cannot_go_is_told_and_stops_nothing(review, caplog) -> None:
    review.settings = review.settings.model_copy(
        update={"provider": "smtp", "smtp_host": "127.0.0.1", "smtp_port": free_port(), "smtp_tls": "none"}
    )
    assert runner(review, COMPOSED).review("weekly", reschedule=False).action == "composed"
    assert "the review mail of the weekly edition of 2026-11-23 07:00 CET did not go" in caplog.text
    assert all(address in caplog.text for address in EDITORS)
    first = edition_of(review, FIRST)
    assert first.status == "ready" and first.review_mailed_at == COMPOSED  # not tried at every refresh


def test_no_news_yet_is_tried_again_later(review) -> None:
    runner(review, WEEKLY_NOV_23 + timedelta(minutes=1)).edition("weekly", reschedule=False)
    before = mails(review)
    early = datetime(2026, 11, 30, 6, 15, tzinfo=ZONE)  # nothing published since the last edition
    run = runner(review, early).review("weekly", reschedule=False)
    assert run.action == "waiting" and "none in the window" in (run.problem or "")
    waiting = editors.preview(review, "weekly", early, categories=["politics"]).edition
    assert waiting.status == "draft" and waiting.window_end == datetime(2026, 11, 30, 7, tzinfo=ZONE)
    assert mails(review) == before  # nothing written: its window stays open
    publish(review, early + timedelta(minutes=5))
    assert (
        runner(review, early + timedelta(minutes=15)).review("weekly", reschedule=False).action == "composed"
    )


def test_the_sign_in_returns_to_the_page_asked_for_and_only_to_ours(make_runtime, tmp_path) -> None:
    runtime = make_runtime()
    accounts.add(runtime, EDITORS[0], PASSWORD, NOW)
    limits = "[editors]\nattempts_per_account = 20\nattempts_per_client = 40\n"
    for site in serve(runtime, tmp_path, extra=limits):
        with site.client() as client:
            asked = client.get(UPCOMING)
            assert asked.status_code == 303
            assert asked.headers["location"] == f"/editor/login?next={quote(UPCOMING, safe='')}"
            page = client.get(asked.headers["location"])
            form = Forms(page.text).form("/editor/login")
            assert form["next"] == UPCOMING
            answer = client.post("/editor/login", data={**form, "email": EDITORS[0], "password": PASSWORD})
            assert answer.status_code == 303 and answer.headers["location"] == UPCOMING
            # Signed in already, the login page sends the editor on, to a page of ours only.
            assert client.get("/editor/login", params={"next": UPCOMING}).headers["location"] == UPCOMING
            for target in OUTSIDE:
                assert client.get("/editor/login", params={"next": target}).headers["location"] == HOME
        for target in OUTSIDE:
            with site.client() as client:
                assert login_form(client)["next"] == HOME  # a link to elsewhere is not even carried
                page = client.get("/editor/login", params={"next": target})
                assert Forms(page.text).form("/editor/login")["next"] == HOME
                form = {**login_form(client), "next": target, "email": EDITORS[0], "password": PASSWORD}
                answer = client.post("/editor/login", data=form)  # a forged form: still home
                assert answer.status_code == 303 and answer.headers["location"] == HOME, target
        with site.client() as client:  # a wrong password keeps the way back
            form = {**login_form(client), "next": UPCOMING, "email": EDITORS[0], "password": "wrong " * 4}
            again = client.post("/editor/login", data=form)
            assert again.status_code == 400 and Forms(again.text).form("/editor/login")["next"] == UPCOMING


@pytest.mark.parametrize(
    "target",
    [
        *OUTSIDE,
        "/editor",
        "/editorial/",
        "/editor//evil.example",
        "/editor/../login",
        "/editor/%2e%2e/x",
        "/editor/a%2F%2Fb",
        "/editor/x\r\nSet-Cookie: a=b",
        "/editor/\u202eevil",
        "/editor/" + "x" * 2000,
        " /editor/",
        "",
    ],
)
def test_only_our_own_editor_pages_are_returned_to(target: str) -> None:
    assert return_path(target) == HOME


def test_our_own_editor_pages_are_returned_to() -> None:
    for target in (UPCOMING, "/editor/editions/3", "/editor/upcoming/weekly?language=de"):
        assert return_path(target) == target


def test_a_reviewed_edition_that_fails_its_checks_stays_held(review, monkeypatch, tmp_path) -> None:
    """With `hold_on_failed_checks`, the early composition is checked before the review mail;
    a failing check (here: an http public_url, whose one-click links mail clients ignore) keeps it
    held by the checks, the mail says so, and the slot does not send it."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no SpamAssassin to wait for: that check is skipped
    settings = review.settings
    weekly = settings.newsletters["weekly"].model_copy(update={"hold_on_failed_checks": True})
    review.settings = settings.model_copy(update={"newsletters": {**settings.newsletters, "weekly": weekly}})
    run = schedule.review_due(review, "weekly", COMPOSED)
    assert run.action in ("composed", "mailed"), run
    edition = edition_of(review, FIRST)
    assert edition.status == "ready" and edition.held_by == "checks"
    mailed = reviews(review)
    assert len(mailed) == len(EDITORS)
    assert all("held" in m["Subject"] for m in mailed), [m["Subject"] for m in mailed]
    at_slot = schedule.run_edition(review, "weekly", WEEKLY_NOV_23 + timedelta(minutes=1), threading.Event())
    assert at_slot.action == "held"
    assert edition_of(review, FIRST).status == "ready"


def test_an_edition_composed_the_evening_before_for_review_is_dated_its_slot(newsroom) -> None:
    """Readers see the day it goes: a review twelve hours ahead closes the window the evening
    before, and the edition still goes, and is dated, on the day of its slot."""
    settings = newsroom.settings
    weekly = settings.newsletters["weekly"].model_copy(update={"review_minutes": 12 * 60})
    newsroom.settings = settings.model_copy(
        update={"newsletters": {**settings.newsletters, "weekly": weekly}}
    )
    evening = WEEKLY_NOV_23 - timedelta(hours=12)
    assert schedule.review_due(newsroom, "weekly", evening).action == "composed"
    edition = edition_of(newsroom, "2026-11-23T07:00")
    assert edition.window_end == evening
    with newsroom.factory() as session:
        text = session.scalars(select(Variant.text).where(Variant.edition_id == edition.id)).first()
    assert text.splitlines()[0].endswith("· 23 November 2026"), text.splitlines()[0]
