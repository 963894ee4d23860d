"""An editor's hold and approval: a held edition does not go at its slot and goes at once when
released, whatever the scheduler's grace; with `approval = "required"` nothing goes until an
editor approves; an edition still held when the next slot comes is skipped, the reason kept."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from newsletter.editions.edition import EditionError, EditionHeld
from newsletter.sending.report import SendReport
from newsletter.services import audit, editors, sending
from newsletter.store.statuses import PickAction
from tests.conftest import WEEKLY_NOV_23
from tests.support.editions import edition_of
from tests.support.schedule import runner
from tests.support.sending import statuses
from tests.support.waiting import at_the_store, until

BEFORE = WEEKLY_NOV_23 - timedelta(hours=20)


def test_a_held_edition_waits_and_goes_at_once_when_released(newsroom) -> None:
    held = editors.decide(newsroom, "weekly", "hold", BEFORE, "ed@example.org")
    assert held.waiting == "held by ed@example.org" and held.edition.slot == "2026-11-23T07:00"
    late = WEEKLY_NOV_23 + timedelta(hours=5)  # far past the scheduler's grace
    job = runner(newsroom, late)
    run = job.edition("weekly", reschedule=False)
    assert run.action == "held" and "held by ed@example.org" in (run.problem or "")
    assert edition_of(newsroom, "2026-11-23T07:00").status == "draft"  # not sent, not missed
    released = editors.decide(newsroom, "weekly", "release", late, "ed@example.org")
    assert released.waiting is None and released.edition.slot == "2026-11-23T07:00"
    run = job.edition("weekly", reschedule=False)
    assert run.action == "sent" and run.report and run.report.status == "complete"
    assert statuses(newsroom, run.report.edition_id) == {"sent": 9}
    entries = [(e.action, e.editor) for e in audit.entries(newsroom, 10)]
    assert ("edition hold", "ed@example.org") in entries and ("edition release", "ed@example.org") in entries
    # The next edition now is next week's: a hold goes to it; a release of nothing held is refused.
    assert (
        editors.decide(newsroom, "weekly", "hold", late, "ed@example.org").edition.slot == "2026-11-30T07:00"
    )
    editors.decide(newsroom, "weekly", "release", late, "ed@example.org")
    with pytest.raises(EditionError, match="not held"):
        editors.decide(newsroom, "weekly", "release", late, "ed@example.org")


def test_required_approval_and_a_hold_past_the_next_slot(newsroom) -> None:
    settings = newsroom.settings
    weekly = settings.newsletters["weekly"].model_copy(update={"approval": "required"})
    newsroom.settings = settings.model_copy(
        update={"newsletters": {**settings.newsletters, "weekly": weekly}}
    )
    job = runner(newsroom, WEEKLY_NOV_23 + timedelta(minutes=2))
    run = job.edition("weekly", reschedule=False)
    assert run.action == "held" and "approval" in (run.problem or "")
    # Nobody approves; the next week's slot comes: the edition is skipped, its reason kept.
    next_week = WEEKLY_NOV_23 + timedelta(days=7, minutes=2)
    job = runner(newsroom, next_week)
    run = job.edition("weekly", reschedule=False)
    skipped = edition_of(newsroom, "2026-11-23T07:00")
    assert skipped.status == "missed" and "approval" in (skipped.note or "")
    assert run.action == "held"  # the new one waits for its approval too
    editors.decide(newsroom, "weekly", "approve", next_week, "ed@example.org")
    run = job.edition("weekly", reschedule=False)
    assert run.action in ("sent", "waiting")  # sent, or waiting for news the sample lacks


@pytest.mark.both_databases
def test_a_change_withdraws_the_approval_and_no_sender_starts_it(newsroom) -> None:
    settings = newsroom.settings
    weekly = settings.newsletters["weekly"].model_copy(update={"approval": "required"})
    newsroom.settings = settings.model_copy(
        update={"newsletters": {**settings.newsletters, "weekly": weekly}}
    )
    editors.decide(newsroom, "weekly", "approve", BEFORE, "ed@example.org")
    edition_id, _warnings = sending.prepare_next(newsroom, "weekly", BEFORE, ahead_ok=True, force=True)
    editors.pick_article(newsroom, "weekly", "3", PickAction.EXCLUDE, BEFORE, "second@example.org")
    [change, _approval] = audit.entries(newsroom, 2)
    assert change.detail == {"article": 3, "approval": "withdrawn: changed after it was approved"}
    on_time = WEEKLY_NOV_23 + timedelta(minutes=2)
    for edition in (None, edition_id):  # the next edition, or this one by its id (`send --edition`)
        with pytest.raises(EditionHeld, match="waiting for an editor's approval"):
            sending.send(newsroom, "weekly", on_time, edition_id=edition)
    assert statuses(newsroom, edition_id) == {"pending": 9}


@pytest.mark.both_databases
def test_a_hold_and_a_sender_starting_take_turns(newsroom, monkeypatch) -> None:
    """A hold given as a sender starts: either the hold comes first and nothing goes, or the
    sender does and the hold is refused as too late; never "held" while it goes."""
    at = WEEKLY_NOV_23 + timedelta(minutes=2)
    edition_id, _warnings = sending.prepare_next(newsroom, "weekly", at, force=True)
    started: list[SendReport | EditionHeld] = []

    def start() -> None:
        try:
            started.append(sending.send(newsroom, "weekly", at, edition_id=edition_id))
        except EditionHeld as exc:
            started.append(exc)

    sender = threading.Thread(target=start)
    opened = editors.open_edition

    def sender_starts_meanwhile(*args):  # the hold has read the edition; a sender starts now
        edition = opened(*args)
        sender.start()
        until(lambda: at_the_store(sender, newsroom))  # done, or waiting for the hold's transaction
        return edition

    monkeypatch.setattr(editors, "open_edition", sender_starts_meanwhile)
    try:
        held = editors.decide(newsroom, "weekly", "hold", at, "ed@example.org").waiting
    except EditionError as exc:
        assert "too late" in str(exc)
        held = None
    sender.join(60)
    sent = statuses(newsroom, edition_id)
    if held:
        assert isinstance(started[0], EditionHeld) and sent == {"pending": 9}
    else:
        assert isinstance(started[0], SendReport) and sent == {"sent": 9}
