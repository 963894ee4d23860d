"""Logging, configured once by the entry point: a logger per concern under `newsletter.`."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime, tzinfo

from rich.logging import RichHandler

from newsletter.text import printable


class _Printable(logging.Formatter):
    """Log lines carry outside text (feed URLs and warnings, server answers): no control
    character in them may reach a terminal or split a line of the log. Their time names its zone
    (the site's, or UTC), as every time the program prints does."""

    def __init__(self, fmt: str, zone: tzinfo = UTC) -> None:
        super().__init__(fmt)
        self.zone = zone

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, self.zone)
        return f"{moment:%Y-%m-%d %H:%M:%S},{int(record.msecs):03d} {moment:%Z}"

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


def configure(
    verbose: bool = False, interactive: bool | None = None, json_lines: bool = False, zone: tzinfo = UTC
) -> None:
    """Rich lines on a terminal, plain lines otherwise (cron, CI, journald), timed in `zone`, or
    JSON lines for a log collector (timed in UTC)."""
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
        handler.setFormatter(_Printable("%(asctime)s %(levelname)s %(name)s: %(message)s", zone))
    # The SendGrid client logs request headers, the API key among them, at DEBUG: never let it.
    logging.getLogger("python_http_client").setLevel(logging.WARNING)
    # The form parser warns of a malformed multipart body in the client's own bytes, as a bare
    # line on stderr; the request is answered 400 all the same: nothing for the operator.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    root = logging.getLogger("newsletter")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO if not interactive else logging.WARNING)
    root.propagate = False


def in_zone(zone: tzinfo) -> None:
    """Plain log lines timed in the site's zone from now on (once the settings are read), as the
    times a command prints beside them are."""
    for handler in logging.getLogger("newsletter").handlers:
        if isinstance(handler.formatter, _Printable):
            handler.formatter.zone = zone
