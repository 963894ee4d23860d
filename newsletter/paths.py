"""Where relative paths lead, so that no command depends on the directory it was started from.

- In a settings file, a relative path is relative to that file's folder.
- Anywhere else (the defaults, environment variables), it is relative to the home folder:
  `home` (NEWSLETTER_HOME, an absolute path), by default the source checkout the package runs
  from, or, for an installed package, the user's data folder ($XDG_DATA_HOME/newsletter,
  ~/.local/share/newsletter).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parent


def from_source_checkout() -> bool:
    return (CHECKOUT / "pyproject.toml").is_file()


def home_folder(named: str | Path | None) -> Path:
    """The home folder: `named` (absolute, `~` allowed), else the default; ValueError if relative."""
    if named:
        path = Path(named).expanduser()
        if not path.is_absolute():
            raise ValueError(f"the home folder must be an absolute path, not {str(named)!r}")
        return Path(os.path.abspath(path))
    if from_source_checkout():
        return CHECKOUT
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "newsletter"


def under(base: Path, path: Path) -> Path:
    """`path` made absolute against `base` (`~` expanded, `..` folded, symbolic links kept)."""
    return Path(os.path.abspath(base / path.expanduser()))


def sqlite_under(base: Path, url: str) -> str:
    """A SQLite URL's relative file made absolute against `base`; any other URL as it is."""
    if not url.startswith("sqlite:"):
        return url
    parsed = make_url(url)
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return url
    if Path(database).expanduser().is_absolute() and not database.startswith("~"):
        return url
    return parsed.set(database=str(under(base, Path(database)))).render_as_string(hide_password=False)


def template_folders(home: Path) -> list[Path]:
    """Where the editors' templates are looked for, in order: the home folder's, the source
    checkout's, and the copy an installed package carries (see pyproject.toml)."""
    return [home / "templates", CHECKOUT / "templates", PACKAGE / "templates"]
