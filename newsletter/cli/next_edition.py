"""`newsletter edition ...`: the next edition, as editors shape it: pins and exclusions, holds
and approvals."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from newsletter import notes
from newsletter.cli import output
from newsletter.cli.options import STANDARD, AtOption, NewsletterOption, known_language, moment
from newsletter.cli.output import out, outside
from newsletter.cli.state import state
from newsletter.editions.slots import slot_time
from newsletter.errors import InputError, NewsletterError
from newsletter.services import editions, editors, sending
from newsletter.services.audit import COMMAND_LINE
from newsletter.store.statuses import EditionStatus, PickAction

edition_app = typer.Typer(
    help="The next edition: the editors' pins and exclusions, note, holds and approvals.",
    no_args_is_help=True,
)
ArticleArgument = Annotated[str, typer.Argument(help="The article's id (see `trending`) or URL.")]


def _pick(ctx: typer.Context, article: str, newsletter: str, at: str | None, action: PickAction) -> None:
    settings = state(ctx).settings
    picked = editors.pick_article(state(ctx).runtime(), newsletter, article, action, moment(settings, at))
    verb = "pinned to" if action == PickAction.PIN else "excluded from"
    output.line(
        f"{picked.title!r} (article {picked.article_id}) {verb} the "
        f"{output.edition_line(picked.edition, settings.zone)}"
    )


@edition_app.command("pin")
def edition_pin(
    ctx: typer.Context,
    article: ArticleArgument,
    newsletter: NewsletterOption = "weekly",
    at: AtOption = None,
) -> None:
    """Put an article in the next edition for every reader of its categories."""
    _pick(ctx, article, newsletter, at, PickAction.PIN)


@edition_app.command("exclude")
def edition_exclude(
    ctx: typer.Context,
    article: ArticleArgument,
    newsletter: NewsletterOption = "weekly",
    at: AtOption = None,
) -> None:
    """Keep an article out of the next edition."""
    _pick(ctx, article, newsletter, at, PickAction.EXCLUDE)


@edition_app.command("unpick")
def edition_unpick(
    ctx: typer.Context,
    article: ArticleArgument,
    newsletter: NewsletterOption = "weekly",
    at: AtOption = None,
) -> None:
    """Undo a pin or an exclusion on the next edition; exit 1 when the article had neither."""
    settings = state(ctx).settings
    runtime = state(ctx).runtime()
    now = moment(settings, at)
    undone = editors.unpick_article(runtime, newsletter, article, now)
    if undone is None:
        edition = editions.next_edition(runtime, newsletter, now).edition
        raise NewsletterError(
            f"article {article} has no pin or exclusion in the {output.edition_line(edition, settings.zone)}"
        )
    was = "pin" if undone.action == PickAction.PIN else "exclusion"
    output.line(
        f"{undone.title!r} (article {undone.article_id}): {was} removed from the "
        f"{output.edition_line(undone.edition, settings.zone)}"
    )


@edition_app.command("picks")
def edition_picks(ctx: typer.Context, newsletter: NewsletterOption = "weekly", at: AtOption = None) -> None:
    """List the next edition's pins and exclusions."""
    settings = state(ctx).settings
    edition, picked = editors.edition_picks(state(ctx).runtime(), newsletter, moment(settings, at))
    output.line(output.edition_line(edition, settings.zone))
    if not picked:
        output.line("no pins or exclusions")
        return
    table = Table(title="Picks")
    for column in ("id", "pick", "title"):
        table.add_column(column, overflow="fold")
    for p in picked:
        table.add_row(str(p.article_id), p.action, outside(p.title))
    out.print(table)


@edition_app.command("note")
def edition_note(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Argument(
            metavar="FILE",
            help="The note's file, UTF-8: Markdown paragraphs, *emphasis* and links to http(s) "
            "addresses; `-` reads standard input.",
        ),
    ] = None,
    newsletter: NewsletterOption = "weekly",
    language: Annotated[
        str | None,
        typer.Option(help="For readers of this language (default: the site's).", callback=known_language),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove the edition's note (the standing one applies).")
    ] = False,
    at: AtOption = None,
) -> None:
    """Set the editor's note of the next edition, after the greeting, for readers of one language.

    Without one, readers get the newsletter's standing note (its `note` setting), if any; a
    language with neither gets the site language's. A prepared edition is prepared again (with
    approval required, its approval is withdrawn); one being sent cannot change."""
    if clear == (file is not None):
        raise InputError("FILE", "give the note's file (`-`: standard input), or --clear, not both")
    source = None if file is None else _read_note(file)
    if source is not None and not source.strip():
        raise InputError("FILE", "the note is empty (use --clear to remove one)")
    settings = state(ctx).settings
    edition = editors.set_note(state(ctx).runtime(), newsletter, language, source, moment(settings, at))
    done = "removed from" if clear else "set on"
    shown = language or settings.site.language
    output.line(f"the {shown} note {done} the {output.edition_line(edition, settings.zone)}")


def _read_note(file: Path) -> str:
    """The note's text, UTF-8, read no further than a note may go."""
    limit = notes.MAX_NOTE * 4 + 16  # a longer file holds a note too long: refused, named so
    try:
        if file == STANDARD:
            data = sys.stdin.buffer.read(limit)
        else:
            with file.open("rb") as handle:
                data = handle.read(limit)
    except OSError as exc:
        raise InputError("FILE", f"cannot read {file}: {exc.strerror or exc}") from None
    if len(data) == limit:
        raise InputError("FILE", f"a note holds at most {notes.MAX_NOTE} characters")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(
            "FILE", f"{'standard input' if file == STANDARD else file} is not UTF-8 text"
        ) from None
    return text


def _decide(ctx: typer.Context, newsletter: str, at: str | None, action: str) -> editors.Decision:
    settings = state(ctx).settings
    decided = editors.decide(state(ctx).runtime(), newsletter, action, moment(settings, at), COMMAND_LINE)
    still = f"; it waits: {decided.waiting}" if decided.waiting else ""
    output.line(f"{action}: the {output.edition_line(decided.edition, settings.zone)}{still}")
    return decided


@edition_app.command("hold")
def edition_hold(ctx: typer.Context, newsletter: NewsletterOption = "weekly", at: AtOption = None) -> None:
    """Hold the next edition: it does not go until released (past the next slot, it is skipped)."""
    _decide(ctx, newsletter, at, "hold")


@edition_app.command("approve")
def edition_approve(ctx: typer.Context, newsletter: NewsletterOption = "weekly", at: AtOption = None) -> None:
    """Approve the next edition (what `approval = "required"` waits for); it goes at its slot."""
    _decide(ctx, newsletter, at, "approve")


@edition_app.command("release")
def edition_release(ctx: typer.Context, newsletter: NewsletterOption = "weekly", at: AtOption = None) -> None:
    """Release a held edition: sent at once when its slot has come, else at its slot."""
    decided = _decide(ctx, newsletter, at, "release")
    runtime, now = state(ctx).runtime(), moment(state(ctx).settings, at)
    if decided.waiting or slot_time(decided.edition.slot, state(ctx).settings.zone) > now:
        return
    report = sending.send(runtime, newsletter, now)
    output.send_report(report)
    if report.status != EditionStatus.COMPLETE:
        raise typer.Exit(1)
