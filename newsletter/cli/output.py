"""Where and how the commands print: results on stdout, progress and problems on stderr.

Text from outside (feed titles, URLs, server answers) is printed as text, never as Rich markup.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from newsletter.ingest.run import FeedReport
from newsletter.sending.report import SendReport
from newsletter.services.editions import EditionSummary
from newsletter.services.feeds import StoredArticles
from newsletter.store.statuses import DeliveryStatus, EditionStatus, FeedStatus
from newsletter.text import printable

out = Console()
err = Console(stderr=True)
FEED_COLOURS = {FeedStatus.OK: "green", FeedStatus.NOT_MODIFIED: "cyan", FeedStatus.PARTIAL: "yellow"}


def outside(text: str) -> Text:
    """Text from outside (titles, URLs, server answers) as plain text with no control character:
    neither Rich markup nor a terminal escape can come through."""
    return Text(printable(text))


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


def editions_table(summaries: list[EditionSummary]) -> Table:
    table = Table(title="Editions")
    for column in ("id", "newsletter", "slot", "status", *DeliveryStatus):
        table.add_column(column)
    for s in summaries:
        e = s.edition
        table.add_row(
            str(e.id),
            outside(e.newsletter),
            outside(e.slot),
            e.status,
            *(str(s.counts.get(d, 0)) for d in DeliveryStatus),
        )
    return table


def send_report(report: SendReport) -> None:
    counts = ", ".join(f"{count} {status}" for status, count in sorted(report.counts.items()))
    colour = {EditionStatus.COMPLETE: "green", EditionStatus.PARTIAL: "yellow"}.get(report.status, "red")
    out.print(
        f"edition {report.edition_id}: [{colour}]{report.status}[/] — this run sent {report.sent}, "
        f"failed {report.failed}; ledger: {counts}"
    )


def warnings(messages: list[str]) -> None:
    for message in messages:
        err.print(Text.assemble(("warning:", "yellow"), " ", message))
