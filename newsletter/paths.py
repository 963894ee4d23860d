"""Where relative paths lead, so that no command depends on the directory it was started from.

- In a settings file, a relative path is relative to that file's folder.
- Anywhere else (the defaults, environment variables), it is relative to the home folder:
  `home` (NEWSLETTER_HOME), by default the source checkout the package runs from, or, for an
  installed package, the user's data folder ($XDG_DATA_HOME/newsletter, ~/.local/share/newsletter).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
SQLITE = "sqlite:///"


def default_home() -> Path:
    checkout = PACKAGE.parent
    if (checkout / "pyproject.toml").is_file():
        return checkout
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "newsletter"


def under(base: Path, path: Path) -> Path:
    """`path` made absolute against `base` (`..` folded, symbolic links left as they are)."""
    return Path(os.path.abspath(base / path.expanduser()))


def sqlite_under(base: Path, url: str) -> str:
    """A SQLite URL's relative file made absolute against `base`; any other URL as it is."""
    if not url.startswith(SQLITE):
        return url
    path, mark, query = url.removeprefix(SQLITE).partition("?")
    if not path or path == ":memory:" or Path(path).is_absolute():
        return url
    return f"{SQLITE}{under(base, Path(path))}{mark}{query}"


def packaged_templates() -> Path:
    """The copy of `templates/` an installed package carries (see pyproject.toml)."""
    return PACKAGE / "templates"
