"""`newsletter demo`: the whole job on the bundled sample site, and where its output went."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli import output
from newsletter.cli.feeds import fetch_with_progress
from newsletter.cli.output import line, out
from newsletter.cli.send import send_with_progress
from newsletter.cli.state import state
from newsletter.cli.subscribers import import_and_show
from newsletter.errors import NewsletterError
from newsletter.services import feeds
from newsletter.services.demo import demo_edition, demo_moment, outbox_messages
from newsletter.services.editions import edition

DEMO_SUBSCRIBERS = Path("subscribers/demo-subscribers.csv")


def demo(
    ctx: typer.Context,
    subscribers: Annotated[
        Path | None,
        typer.Option(help="Demo subscribers to import (default: subscribers/demo-subscribers.csv in home)."),
    ] = None,
) -> None:
    """The whole job on the bundled sample site, sent to the local outbox.

    Fetch, import the demo readers, compose and send the weekly edition, and say where it is."""
    if not state(ctx).settings.demo:
        raise NewsletterError("`newsletter demo` runs with the demo settings: make demo")
    runtime = state(ctx).runtime()
    out.print(output.feed_reports(fetch_with_progress(runtime, state(ctx).verbose)))
    out.print(output.stored_articles(feeds.stored_articles(runtime)))
    import_and_show(runtime, subscribers or runtime.settings.home_folder() / DEMO_SUBSCRIBERS, confirmed=True)
    moment = demo_moment(runtime)
    report = send_with_progress(runtime, "weekly", moment, demo_edition(runtime, moment))
    output.send_report(report)
    folder, files = outbox_messages(runtime, report.edition_id)
    summary = edition(runtime, report.edition_id).edition
    line("")
    line(f"The {output.edition_line(summary, runtime.settings.zone)}: {len(files)} messages in {folder}/")
    if files:  # whole lines, never wrapped: they are pasted into a shell
        shown = shlex.quote(str(files[0]))
        line(f"Open one in a mail client, e.g.:  xdg-open {shown}")
        line(f"or read its source:              less {shown}")
    line(f"Database: {runtime.settings.database_label()}")
    line("The scheduled job on these settings (Ctrl-C stops it):  make run-demo")
