"""A test runtime's settings written as a file for the command line (same store, feeds and outbox),
and the environment a command needs beside it: the secret key, which is never in a file."""

from __future__ import annotations

import json
from pathlib import Path

from newsletter.store.runtime import Runtime
from tests.conftest import SECTIONS
from tests.support.web import SECRET

SECRET_ENV = {"NEWSLETTER_SECRET_KEY": SECRET}


def settings_file(runtime: Runtime, folder: Path, extra: str = "") -> Path:
    """The runtime's settings as a file for the command line: same store, feeds and outbox."""
    settings = runtime.settings
    feeds = "".join(
        f'[[feeds]]\nurl = "{feed.url}"\n'
        + (f'language = "{feed.language}"\n' if feed.language else "")
        + ("trending = true\n" if feed.trending else "")
        for feed in settings.feeds
    )
    path = folder / "n.toml"
    path.write_text(
        f'database_url = "{settings.database_url}"\noutbox_dir = "{settings.outbox_dir}"\n'
        f'timezone = "{settings.timezone}"\npublic_url = "https://news.example"\n{extra}'
        f'[site]\nurl = "{settings.site.url}"\ncategories = {json.dumps(SECTIONS)}\n{feeds}'
    )
    return path


def smtp_env(runtime: Runtime, folder: Path, port: int) -> dict[str, str]:
    """The environment of a command sending through the SMTP server on `port` (no TLS)."""
    config = settings_file(
        runtime,
        folder,
        f'provider = "smtp"\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\nsmtp_tls = "none"\n',
    )
    return {**SECRET_ENV, "NEWSLETTER_CONFIG": str(config), "COLUMNS": "80"}
