"""`newsletter alert ARTICLE`: one article sent at once to the readers of an alert newsletter."""

from __future__ import annotations

from typing import Annotated

import typer

from newsletter.cli import output
from newsletter.cli.options import AtOption, moment, optional_newsletter
from newsletter.cli.output import out
from newsletter.cli.state import state
from newsletter.editions.slots import wall_clock
from newsletter.services import breaking
from newsletter.store.statuses import EditionStatus
from newsletter.text import printable


def alert(
    ctx: typer.Context,
    article: Annotated[str, typer.Argument(help="The article: its number (see `trending`), link or guid.")],
    newsletter: Annotated[
        str | None,
        typer.Option(
            "--newsletter",
            "-n",
            help="Which alert newsletter (default: the site's only one).",
            callback=optional_newsletter,
        ),
    ] = None,
    subject: Annotated[
        str | None, typer.Option(help="The subject, in every language (default: the headline).")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Show who would get it and its subject; change nothing, send nothing."
        ),
    ] = False,
    urgent: Annotated[bool, typer.Option("--urgent", help="Send it now, even in the quiet hours.")] = False,
    at: AtOption = None,
) -> None:
    """Send one article now to the readers of an alert newsletter (once per article, however
    often asked); in its quiet hours it waits for their end unless --urgent."""
    runtime = state(ctx).runtime()
    now = moment(runtime.settings, at)
    zone = runtime.settings.zone
    if dry_run:
        shown = breaking.rehearse(runtime, newsletter, article, now, subject, urgent)
        counts = ", ".join(f"{n} {status}" for status, n in sorted(shown.counts.items())) or "nobody"
        output.line(f"the {shown.newsletter} alert of article {shown.article_id}: {printable(shown.title)}")
        if shown.already is not None:
            output.line(f"already alerted ({shown.already.status}): nothing more goes")
        elif shown.not_before is not None:
            output.line(
                f"held by the quiet hours until {wall_clock(shown.not_before, zone)} (--urgent sends it now)"
            )
        output.line(f"would go to: {counts}")
        for language, line, _html, _text in shown.messages:
            output.line(f"  {language}: {printable(line)}")
        output.warnings(shown.warnings)
        return
    opened = breaking.open_by_editor(runtime, newsletter, article, now, subject, urgent)
    info = opened.edition
    output.line(f"the {info.newsletter} alert of article {opened.article_id}: {printable(opened.title)}")
    if not opened.created and info.status in (EditionStatus.COMPLETE, EditionStatus.PARTIAL):
        output.line(f"already alerted (edition {info.id}, {info.status}): nothing more goes")
        return
    if opened.not_before is not None and now < opened.not_before and info.status == EditionStatus.DRAFT:
        output.line(
            f"held by the quiet hours until {wall_clock(opened.not_before, zone)}: `newsletter run` sends "
            "it then (--urgent sends it now)"
        )
        return
    assert info.id is not None
    report = breaking.send_alert(runtime, info.id, now)
    output.send_report(report)
    if report.status != EditionStatus.COMPLETE:
        out.print("the alert did not finish: run the same command again to resume it", markup=False)
        raise typer.Exit(1)
