"""What every command shares: the settings file named on the command line, the settings read from
it on first use, and the runtime opened on first use."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # imported when first used: `--help` needs neither the settings nor the store
    from newsletter.settings import Settings
    from newsletter.store.runtime import Runtime


class State:
    """Built before any option is read: `--config` may come before or after the command, so the
    settings are read only when a command (or an option's check) first needs them."""

    def __init__(self) -> None:
        self.config: Path | None = None
        self.verbose = False
        self._settings: Settings | None = None
        self._runtime: Runtime | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from newsletter.settings import load_settings

            self._settings = load_settings(self.config)  # the log is timed in its zone from here
        return self._settings

    def runtime(self) -> Runtime:
        """Connect and migrate on first use: `--help` and bad arguments never touch the store."""
        if self._runtime is None:
            from newsletter.store.runtime import open_runtime

            self._runtime = open_runtime(self.settings)
        return self._runtime

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()


def state(ctx: typer.Context) -> State:
    found: State = ctx.obj
    return found
