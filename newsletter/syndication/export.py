"""The archive as static files for any static host or CDN: every live page and feed, the
sitemap and robots.txt.

A file is rewritten only when its bytes change (atomically, so a host never serves half of
one), so an older edition's files keep their bytes and times. A manifest in the folder lists
the files the export wrote: those no longer made are removed, and no other file is touched.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from newsletter.errors import NewsletterError

MANIFEST = ".newsletter-export.json"
# A path ending in one of these is a file of its own; any other is a page: PATH/index.html.
FILE_SUFFIXES = (".xml", ".txt", ".atom", ".rss", ".json", ".css")
# What `_write` writes beside a file before renaming it over it: `.NAME.HEX.tmp`.
_TEMPORARY = re.compile(r"\.(.+)\.[0-9a-f]{32}\.tmp")


class ExportError(NewsletterError):
    """The folder cannot take the export; carries the folder (or file) and why."""

    def __init__(self, where: Path | str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = str(where)
        self.problem = problem


@dataclass(frozen=True)
class ExportReport:
    """Files relative to the folder, in POSIX form."""

    folder: Path
    written: list[str]
    unchanged: int
    removed: list[str]


def file_for(path: str) -> str:
    """Where a document's URL path is written, relative to the folder; a path that could lead
    anywhere else (`..`, `.`, empty parts, backslashes, the manifest) is refused."""
    inner = path[1:].removesuffix("/")
    found = inner if inner.endswith(FILE_SUFFIXES) else "/".join(filter(None, [inner, "index.html"]))
    if not path.startswith("/") or found == MANIFEST or not _relative(found):
        raise ExportError(path, "not a document path this export can write")
    return found


def export(folder: Path, documents: Iterable[tuple[str, str]]) -> ExportReport:
    """Write `documents` (URL path, body) into `folder` and remove what an earlier export wrote
    that is no longer among them. A folder holding anything but no manifest is refused."""
    wanted: dict[str, bytes] = {}
    for path, body in documents:
        wanted[file_for(path)] = body.encode()
    if folder.exists() and not folder.is_dir():
        raise ExportError(folder, "not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    root = folder.resolve()
    before = _manifest(root)
    _clear_temporaries(root, before | {MANIFEST})
    for name in sorted(set(wanted) - before):
        target = _inside(root, name)
        if target.exists() and not _same(target, wanted[name]):
            raise ExportError(target, "a file this export did not write is in the way; move it")
    # Listed before any is written: an export stopped half-way still knows every file it wrote.
    _write_manifest(root, before | set(wanted))
    written, unchanged = [], 0
    for name, content in sorted(wanted.items()):
        target = _inside(root, name)
        if _same(target, content):
            unchanged += 1
            continue
        _write(target, content)
        written.append(name)
    removed = []
    for name in sorted(before - set(wanted)):
        target = _inside(root, name)
        if target.is_file() or target.is_symlink():
            target.unlink()
            removed.append(name)
        _prune(root, target.parent)
    _write_manifest(root, set(wanted))
    return ExportReport(folder, written, unchanged, removed)


def _manifest(root: Path) -> set[str]:
    """The files an earlier export wrote; none for an empty folder."""
    manifest = root / MANIFEST
    if not manifest.is_file():
        _clear_temporaries(root, {MANIFEST})  # a first export stopped as it wrote the manifest
        if any(root.iterdir()):
            raise ExportError(
                root, f"holds files but no {MANIFEST}: export into an empty folder, or an earlier export's"
            )
        return set()
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        files = data["files"]
        if not isinstance(files, list) or not all(isinstance(name, str) for name in files):
            raise TypeError("files is not a list of names")
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError(manifest, f"not an export's manifest ({exc})") from None
    for name in files:
        if name == MANIFEST or not _relative(name):
            raise ExportError(manifest, f"lists a file outside the folder: {name!r}")
    return set(files)


def _clear_temporaries(root: Path, names: set[str]) -> None:
    """Remove what an export stopped half-way (`kill -9`) left beside these files of its own: a
    host would publish the copies, and a withdrawn edition's folder could never go."""
    by_folder: dict[PurePosixPath, set[str]] = {}
    for name in names:
        path = PurePosixPath(name)
        by_folder.setdefault(path.parent, set()).add(path.name)
    for folder, files in by_folder.items():
        place = _inside(root, (folder / min(files)).as_posix()).parent
        if not place.is_dir():
            continue
        for entry in place.iterdir():
            found = _TEMPORARY.fullmatch(entry.name)
            if found and found.group(1) in files and entry.is_file() and not entry.is_symlink():
                entry.unlink()


def _relative(name: str) -> bool:
    """A path relative to the folder that stays in it: no empty, `.` or `..` part, no backslash."""
    parts = name.split("/")
    return all(part not in ("", ".", "..") and "\\" not in part and "\0" not in part for part in parts)


def _inside(root: Path, name: str) -> Path:
    """The file `name` in the folder, refused when a link would take it outside."""
    target = root.joinpath(*PurePosixPath(name).parts)
    if not target.parent.resolve().is_relative_to(root):
        raise ExportError(target, "leads outside the export folder (a symbolic link?)")
    return target


def _same(target: Path, body: bytes) -> bool:
    try:
        return target.is_file() and target.stat().st_size == len(body) and target.read_bytes() == body
    except OSError:
        return False


def _write(target: Path, body: bytes) -> None:
    """Write beside the file, then rename over it: a reader sees the old bytes or the new."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir():
        raise ExportError(target, "a folder is in the way of a file")
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        with open(descriptor, "wb") as file:
            file.write(body)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _prune(root: Path, folder: Path) -> None:
    """Remove `folder` and its parents up to the root while they are empty."""
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except FileNotFoundError:
            pass
        except OSError:  # not empty: so are its parents
            return
        folder = folder.parent


def _write_manifest(root: Path, files: set[str]) -> None:
    _write(root / MANIFEST, (json.dumps({"files": sorted(files)}, indent=1) + "\n").encode())
