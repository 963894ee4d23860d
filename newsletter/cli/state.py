"""What the root command builds for its sub-commands: the settings now, the runtime on first use."""

from __future__ import annotations

from pathlib import Path

import typer

from newsletter.settings import Settings, load_settings
from newsletter.store.runtime import Runtime, open_runtime


class State:
    def __init__(self, config: Path | None) -> None:
        self.config = config
        self.settings: Settings = load_settings(config)
        self._runtime: Runtime | None = None

    def runtime(self) -> Runtime:
        """Connect and migrate on first use: `--help` and bad arguments never touch the store."""
        if self._runtime is None:
            self._runtime = open_runtime(self.settings)
        return self._runtime

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()


def state(ctx: typer.Context) -> State:
    found: State = ctx.obj
    return found
