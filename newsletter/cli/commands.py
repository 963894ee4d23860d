"""The commands under `newsletter`, as a table: `--help` lists them without importing any, and a
command's module is imported only when that command runs or its own help is asked (the web app,
the store and the senders are heavy, and most commands need one of them at most)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer
import typer.main
from typer._click import Command, Context, Parameter
from typer.core import TyperCommand, TyperGroup

from newsletter.cli.options import ConfigOption, VerboseOption


@dataclass(frozen=True)
class Entry:
    name: str
    module: str  # under newsletter.cli
    attribute: str  # the command's function, or the group's Typer
    help: str  # the first paragraph of its help, on one line (tests/test_cli.py checks it)


# In the order `--help` lists them: commands, then groups.
COMMANDS = (
    Entry(
        "fetch",
        "feeds",
        "fetch",
        "Fetch every configured feed and store its articles; exit 1 unless every feed was read.",
    ),
    Entry(
        "status",
        "status",
        "status",
        "What needs a person's eye: feeds, readers, suppressions, recent editions, each job's next run, "
        "and the problems (`--check` exits 1 when there is one).",
    ),
    Entry(
        "trending",
        "trending",
        "trending",
        "Rank recent articles by trending score, with their ids (what `edition pin` takes).",
    ),
    Entry(
        "preview",
        "preview",
        "preview",
        "Write exactly what such a reader (or this subscriber) gets in the next edition.",
    ),
    Entry(
        "check",
        "checks",
        "check",
        "Check the next edition before it goes: article links answer, images have alt text, each "
        "variant stays within Gmail's clipping limit, the SpamAssassin score, List-Unsubscribe.",
    ),
    Entry("send", "send", "send", "Prepare the next edition (once) when its slot has come, and send it."),
    Entry(
        "alert",
        "alert",
        "alert",
        "Send one article now to the readers of an alert newsletter (once per article, however "
        "often asked); in its quiet hours it waits for their end unless --urgent.",
    ),
    Entry(
        "test-send",
        "rehearsal",
        "test_send",
        "Send the next edition, as a reader would get it, to one address only.",
    ),
    Entry("editions", "editions", "editions", "List editions with their deliveries per status."),
    Entry(
        "deliveries",
        "editions",
        "deliveries",
        "An edition's deliveries, failures first, with the provider's words.",
    ),
    Entry(
        "bounces",
        "bounces",
        "bounces",
        "Read the bounce mailbox and act on it; exit 1 when a message could not be read.",
    ),
    Entry("demo", "demo", "demo", "The whole job on the bundled sample site, sent to the local outbox."),
    Entry(
        "run",
        "run",
        "run",
        "Run the scheduled job until SIGTERM or Ctrl-C: feeds, editions at their slots, upkeep.",
    ),
    Entry(
        "serve",
        "serve",
        "serve",
        "Serve the readers' pages until SIGTERM or Ctrl-C; the links in every email lead here, so "
        "`public_url` in the settings is where a reverse proxy makes this reachable.",
    ),
    Entry(
        "edition",
        "next_edition",
        "edition_app",
        "The next edition: the editors' pins and exclusions, note, holds and approvals.",
    ),
    Entry(
        "subscribers",
        "subscribers",
        "subscribers_app",
        "Subscribers: one reader at a time, or in bulk (CSV import and export).",
    ),
    Entry(
        "editors",
        "editors",
        "editors_app",
        "Editors' accounts for the editors' pages (/editor/), and the audit log.",
    ),
    Entry(
        "archive",
        "archive",
        "archive_app",
        "The public archive and its feeds: withdraw an edition, render again, export, tell the hubs.",
    ),
    Entry("db", "db", "db_app", "The database: migrations."),
)


class Listed(TyperCommand):
    """A command as `--help` lists it: its name and help, its module not imported yet."""

    def __init__(self, entry: Entry) -> None:
        super().__init__(entry.name, help=entry.help)
        self.entry = entry


class LazyGroup(TyperGroup):
    """The root group: every command of `COMMANDS` listed, each made for real when resolved."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for entry in COMMANDS:
            self.commands.setdefault(entry.name, Listed(entry))

    def load(self, name: str) -> Command:
        """The command itself, its module imported, with the shared options at every level."""
        found = self.commands[name]
        if isinstance(found, Listed):
            found = self.commands[name] = made(found.entry)
        return found

    def resolve_command(self, ctx: Context, args: list[str]) -> tuple[str | None, Command | None, list[str]]:
        name, found, rest = super().resolve_command(ctx, args)
        return name, self.load(name) if name else found, rest


def made(entry: Entry) -> Command:
    """The click command of an entry, made as `app.command()` or `app.add_typer()` would."""
    target = getattr(importlib.import_module(f"newsletter.cli.{entry.module}"), entry.attribute)
    holder = typer.Typer()
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=entry.name)
    else:
        holder.command(entry.name)(target)
    return with_shared_options(typer.main.get_group(holder).commands[entry.name])


def _shared(config: ConfigOption = None, verbose: VerboseOption = False) -> None:
    """The options every command takes, before or after its name (see `shared_options`)."""


def shared_options() -> list[Parameter]:
    """`--config` and `--verbose` as typer makes them, fresh for one command."""
    template = typer.Typer(add_completion=False)
    template.command()(_shared)
    return list(typer.main.get_command(template).params)


def with_shared_options(command: Command) -> Command:
    """`command` with `--config` and `--verbose` on it and on every command and group below it,
    so they work wherever they are typed (a command still to be imported gets them then)."""
    below = [command]
    while below:
        current = below.pop()
        current.params.extend(shared_options())
        if isinstance(current, TyperGroup):
            below.extend(c for c in current.commands.values() if not isinstance(c, Listed))
    return command
