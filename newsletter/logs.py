"""Logging, configured once by the entry point: a logger per concern under `newsletter.`."""

from __future__ import annotations

import logging
import sys

from rich.logging import RichHandler


def configure(verbose: bool = False, interactive: bool | None = None) -> None:
    """Rich lines on a terminal, plain timestamped lines otherwise (cron, CI, journald)."""
    interactive = sys.stderr.isatty() if interactive is None else interactive
    handler: logging.Handler
    if interactive:
        handler = RichHandler(show_path=False, markup=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # The SendGrid client logs request headers, the API key among them, at DEBUG: never let it.
    logging.getLogger("python_http_client").setLevel(logging.WARNING)
    root = logging.getLogger("newsletter")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO if not interactive else logging.WARNING)
    root.propagate = False
