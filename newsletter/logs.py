"""Logging, configured once by the entry point: a logger per concern under `newsletter.`."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from rich.logging import RichHandler

from newsletter.text import printable


class _Printable(logging.Formatter):
    """Log lines carry outside text (feed URLs and warnings, server answers): no control
    character in them may reach a terminal or split a line of the log."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))


class _JsonLines(logging.Formatter):
    """One JSON object per line, for log collectors: time (ISO 8601, UTC), level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line = {"time": moment, "level": record.levelname.lower(), "logger": record.name}
        line["message"] = printable(record.getMessage())
        if record.exc_info:
            line["error"] = printable(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


def configure(verbose: bool = False, interactive: bool | None = None, json_lines: bool = False) -> None:
    """Rich lines on a terminal, plain timestamped lines otherwise (cron, CI, journald), or JSON
    lines for a log collector."""
    interactive = sys.stderr.isatty() if interactive is None else interactive
    handler: logging.Handler
    if json_lines:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_JsonLines())
        interactive = False
    elif interactive:
        handler = RichHandler(show_path=False, markup=False, rich_tracebacks=False)
        handler.setFormatter(_Printable("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Printable("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # The SendGrid client logs request headers, the API key among them, at DEBUG: never let it.
    logging.getLogger("python_http_client").setLevel(logging.WARNING)
    root = logging.getLogger("newsletter")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO if not interactive else logging.WARNING)
    root.propagate = False
