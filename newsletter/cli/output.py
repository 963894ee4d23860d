"""Where and how the commands print: results on stdout, progress and problems on stderr.

Text from outside (feed titles, URLs, server answers) is printed as text, never as Rich markup.
Every time is shown in the site's time zone with the zone's name; JSON gives ISO 8601 with the
offset. Output that is not a terminal (a pipe, a file, cron) is never cut or wrapped.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table
from rich.text import Text

from newsletter.editions.slots import next_slot_after, slot_time, wall_clock
from newsletter.settings import Settings, config_path
from newsletter.store.statuses import DeliveryStatus, EditionStatus, FeedStatus
from newsletter.text import printable

if TYPE_CHECKING:  # what each command prints, not what every command imports
    from newsletter.editions.edition import EditionInfo
    from newsletter.ingest.run import FeedReport
    from newsletter.sending.report import SendReport
    from newsletter.services.editions import EditionSummary
    from newsletter.services.feeds import StoredArticles

# Wide enough that no cell or line is ever cut or wrapped when read by a program, not a person.
UNLIMITED = 1_000_000


def console(stderr: bool = False) -> Console:
    made = Console(stderr=stderr)
    if not made.is_terminal:
        made.width = UNLIMITED
    return made


out = console()
err = console(stderr=True)
FEED_COLOURS = {FeedStatus.OK: "green", FeedStatus.NOT_MODIFIED: "cyan", FeedStatus.PARTIAL: "yellow"}


def told_here(logger: str, verbose: bool) -> None:
    """What the command prints itself is not logged as well (unless --verbose): a pipe or a cron
    mail gets each thing once. Problems are still logged."""
    logging.getLogger(logger).setLevel(logging.NOTSET if verbose else logging.WARNING)


def outside(text: str) -> Text:
    """Text from outside (titles, URLs, server answers) as plain text with no control character:
    neither Rich markup nor a terminal escape can come through."""
    return Text(printable(text))


def line(text: str, to: Console = out) -> None:
    """One line that may hold outside text (names, paths), never wrapped: it can be pasted."""
    to.print(outside(text), soft_wrap=True)


def settings_file(named: Path | None) -> str | None:
    """The settings file a command read: `--config`, else the one found as `config_path` looks
    (None: the defaults and the environment only)."""
    used = named or config_path()
    return str(used) if used is not None else None


def where(named: Path | None, settings: Settings) -> None:
    """Which settings file and which store a command works on (`status`, an import): a fresh
    shell may find another site's. The store's URL never shows a password."""
    line(f"settings: {settings_file(named) or 'defaults (no settings file)'}")
    line(f"store: {settings.database_label()}")


def local(when: datetime | None, zone: ZoneInfo) -> str:
    """A time as people at the site read it, with the zone's name ('2026-11-23 07:00 CET')."""
    return wall_clock(when, zone) if when else ""


def iso(when: datetime | None, zone: ZoneInfo) -> str | None:
    """A time for programs: ISO 8601 in the site's zone, with its offset."""
    return when.astimezone(zone).isoformat() if when else None


def slot_iso(slot: str, zone: ZoneInfo) -> str | None:
    """A slot's name for programs: the instant it stands for, with its offset, as every time."""
    return iso(slot_time(slot, zone), zone)


def ahead_of_its_slot(edition: EditionInfo, settings: Settings) -> str:
    """What sending an edition ahead of its slot spends: that slot's edition, so the newsletter's
    next one is the slot after it (a weekly sent on Monday for next Monday: none goes then)."""
    config = settings.newsletter(edition.newsletter)
    slot = slot_time(edition.slot, settings.zone)
    after = next_slot_after(config.days, config.at, settings.zone, slot)
    return (
        f"ahead of its slot: this is the {edition.newsletter} edition of {local(slot, settings.zone)}, "
        f"none goes then; the next goes at {local(after, settings.zone)}"
    )


def edition_line(edition: EditionInfo, zone: ZoneInfo, stored: bool = True) -> str:
    """Which edition a command acts on: newsletter, slot and window, in the site's time zone,
    and (when `stored`: not for a rehearsal rolled back) its id and status in the store."""
    told = (
        f"{edition.newsletter} edition of {local(slot_time(edition.slot, zone), zone)}, window "
        f"{local(edition.window_start, zone)} to {local(edition.window_end, zone)}"
    )
    if not stored:
        return told
    if edition.id is None:
        return f"{told} (not started)"
    return f"{told} (edition {edition.id}, {edition.status})"


def edition_json(summary: EditionSummary, zone: ZoneInfo) -> dict[str, Any]:
    e = summary.edition
    return {
        "id": e.id,
        "newsletter": e.newsletter,
        "slot": slot_iso(e.slot, zone),
        "status": e.status.value,
        "window_start": iso(e.window_start, zone),
        "window_end": iso(e.window_end, zone),
        "article": None if e.article_id is None else {"id": e.article_id, "title": e.article_title},
        "deliveries": {status.value: summary.counts.get(status, 0) for status in DeliveryStatus},
        "waves": None
        if summary.waves is None
        else {
            "done": summary.waves.done,
            "total": summary.waves.total,
            "next": iso(summary.waves.next, zone),
            "last": iso(summary.waves.last, zone),
            "waiting": summary.waves.waiting,
        },
    }


def waves_line(summary: EditionSummary, zone: ZoneInfo) -> str | None:
    """A local-time edition's waves in the site's zone: how many went, the next, the last."""
    shown = summary.waves
    if shown is None:
        return None
    coming = (
        f"next {local(shown.next, zone)} ({shown.waiting} readers waiting)" if shown.next else "none to come"
    )
    return (
        f"edition {summary.edition.id} in waves: {shown.done} of {shown.total} done; {coming}; "
        f"last {local(shown.last, zone)}"
    )


def emit_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def feed_status(status: FeedStatus | None) -> Text:
    return Text(status or "never fetched", style=FEED_COLOURS.get(status, "red") if status else "red")


def feed_reports(reports: list[FeedReport]) -> Table:
    table = Table(title="Feeds")
    for column in ("feed", "status", "new", "updated", "unchanged", "problem"):
        table.add_column(column, overflow="fold")
    for r in reports:
        problem = r.problem or (f"{len(r.warnings)} warning(s)" if r.warnings else "")
        table.add_row(
            outside(r.url),
            feed_status(r.status),
            str(r.new),
            str(r.updated),
            str(r.unchanged),
            outside(problem),
        )
    return table


def stored_articles(stored: StoredArticles) -> Table:
    table = Table(title="Stored articles")
    table.add_column("category")
    table.add_column("language")
    table.add_column("articles", justify="right")
    for name, language, count in stored.by_section:
        table.add_row(outside(name), outside(language), str(count))
    for language, count in stored.by_language:
        table.add_row(Text("all", style="bold"), Text(language), Text(str(count), style="bold"))
    return table


def editions_table(summaries: list[EditionSummary], zone: ZoneInfo) -> Table:
    table = Table(title="Editions")
    for column in ("id", "newsletter", "slot", "status", *DeliveryStatus):
        table.add_column(column, overflow="fold")
    for s in summaries:
        e = s.edition
        slot = local(slot_time(e.slot, zone), zone)
        if e.article_id is not None:  # an alert: its article, named
            slot = f"{slot}, alert of article {e.article_id}: {e.article_title or 'gone'}"
        table.add_row(
            str(e.id),
            outside(e.newsletter),
            outside(slot),
            e.status,
            *(str(s.counts.get(d, 0)) for d in DeliveryStatus),
        )
    if told := [line for s in summaries if (line := waves_line(s, zone))]:
        table.caption = "\n".join(told)
    return table


def send_report(report: SendReport) -> None:
    counts = ", ".join(f"{count} {status}" for status, count in sorted(report.counts.items()))
    colour = {EditionStatus.COMPLETE: "green", EditionStatus.PARTIAL: "yellow"}.get(report.status, "red")
    out.print(
        f"edition {report.edition_id}: [{colour}]{report.status}[/] — this run sent {report.sent}, "
        f"failed {report.failed}; ledger: {counts}",
        soft_wrap=True,
    )
    if report.counts.get(DeliveryStatus.FAILED):
        out.print(
            f"`newsletter deliveries {report.edition_id} --status failed` lists who and why",
            markup=False,
            soft_wrap=True,
        )
    if report.counts.get(DeliveryStatus.UNCERTAIN):
        out.print(
            f"{report.counts[DeliveryStatus.UNCERTAIN]} uncertain (their request was in flight when a "
            f"sender stopped): the provider's events settle them; without its webhook, "
            f"`newsletter send --resend-uncertain {report.edition_id}` sends them again "
            "(a reader may get two)",
            markup=False,
            soft_wrap=True,
        )


def warnings(messages: list[str]) -> None:
    for message in messages:
        err.print(Text.assemble(("warning:", "yellow"), " ", printable(message)), soft_wrap=True)
