"""`newsletter db ...`: the store's schema."""

from __future__ import annotations

import typer

from newsletter.cli.output import out
from newsletter.cli.state import state

db_app = typer.Typer(help="The database: migrations.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply the database migrations (every command does this itself when needed)."""
    state(ctx).runtime()
    out.print(f"database up to date: {state(ctx).settings.database_label()}", markup=False)
