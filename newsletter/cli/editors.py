"""`newsletter editors ...`: the accounts that sign in to the editors' pages, and the audit log.

A password never comes as an argument (it would sit in the shell's history and in `ps`): a
hidden prompt asked twice on a terminal, or one line on standard input with `--password-stdin`.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from newsletter.cli.options import JsonOption
from newsletter.cli.output import emit_json, iso, line, local, out, outside
from newsletter.cli.state import state
from newsletter.errors import InputError
from newsletter.services import accounts, audit

editors_app = typer.Typer(
    help="Editors' accounts for the editors' pages (/editor/), and the audit log.", no_args_is_help=True
)
EditorArgument = Annotated[str, typer.Argument(metavar="EMAIL", help="The editor's email address.")]
PasswordStdinOption = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input (no prompt)."
    ),
]


def read_password(from_stdin: bool) -> str:
    """The new password: one line of standard input, else asked twice without echo."""
    if from_stdin:
        given = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
        if not given:
            raise InputError("--password-stdin", "standard input held no password")
        return given
    if not sys.stdin.isatty():
        raise InputError(
            "--password-stdin",
            "no terminal to ask the password on: run it on a terminal, or add --password-stdin and "
            "give the password as the first line of standard input",
        )
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@editors_app.command("add")
def editors_add(
    ctx: typer.Context, email: EditorArgument, password_stdin: PasswordStdinOption = False
) -> None:
    """Add an editor, who may then sign in at /editor/login."""
    accounts.editor_address(email)  # a wrong address is told before the password is asked
    runtime = state(ctx).runtime()
    password = read_password(password_stdin)
    address = accounts.add(runtime, email, password, datetime.now(UTC))
    line(
        f"editor {address} added: they sign in at {str(runtime.settings.public_url).rstrip('/')}/editor/login"
    )


@editors_app.command("list")
def editors_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Editors by address: since when, their last sign-in, and how many sessions are live."""
    zone = state(ctx).settings.zone
    found = accounts.accounts(state(ctx).runtime(), datetime.now(UTC))
    if as_json:
        emit_json(
            [
                {
                    "email": a.email,
                    "created_at": iso(a.created_at, zone),
                    "password_changed_at": iso(a.password_changed_at, zone),
                    "last_sign_in_at": iso(a.last_sign_in_at, zone),
                    "sessions": a.sessions,
                }
                for a in found
            ]
        )
        return
    if not found:
        line("no editors (`newsletter editors add EMAIL` adds one)")
        return
    table = Table(title="Editors")
    for column in ("address", "since", "password changed", "last sign-in", "sessions"):
        table.add_column(column, overflow="fold")
    for a in found:
        table.add_row(
            outside(a.email),
            local(a.created_at, zone),
            local(a.password_changed_at, zone),
            local(a.last_sign_in_at, zone) or "never",
            str(a.sessions),
        )
    out.print(table)


@editors_app.command("remove")
def editors_remove(ctx: typer.Context, email: EditorArgument) -> None:
    """Remove an editor; their sessions end at once."""
    ended = accounts.remove(state(ctx).runtime(), email, datetime.now(UTC))
    line(f"editor {accounts.editor_address(email)} removed; {ended} session(s) ended")


@editors_app.command("passwd")
def editors_passwd(
    ctx: typer.Context, email: EditorArgument, password_stdin: PasswordStdinOption = False
) -> None:
    """Change an editor's password; their sessions end, so every browser signs in again."""
    accounts.editor_address(email)
    runtime = state(ctx).runtime()
    password = read_password(password_stdin)
    ended = accounts.change_password(runtime, email, password, datetime.now(UTC))
    line(f"password of {accounts.editor_address(email)} changed; {ended} session(s) ended")


@editors_app.command("log")
def editors_log(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="The newest this many entries.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """The audit log, newest first: sign-ins (failed ones too), sign-outs, accounts changed."""
    zone = state(ctx).settings.zone
    entries = audit.entries(state(ctx).runtime(), limit)
    if as_json:
        emit_json(
            [
                {
                    "at": iso(e.at, zone),
                    "editor": e.editor,
                    "action": e.action,
                    "target": e.target,
                    "detail": e.detail,
                    "client": e.client,
                }
                for e in entries
            ]
        )
        return
    if not entries:
        line("the audit log is empty")
        return
    table = Table(title="Audit log")
    for column in ("when", "editor", "action", "target", "client", "detail"):
        table.add_column(column, overflow="fold")
    for e in entries:
        table.add_row(
            local(e.at, zone),
            outside(e.editor or ""),
            outside(e.action),
            outside(e.target or ""),
            outside(e.client or ""),
            outside(json.dumps(e.detail, ensure_ascii=False, sort_keys=True) if e.detail else ""),
        )
    out.print(table)
