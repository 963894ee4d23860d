"""Editors' accounts on the command line (issue #13, part 1): `editors add`, `list`, `passwd`,
`remove` and `log`. A password comes from standard input or a hidden prompt, never an
argument; a weak one is refused with the reason; only its hash is stored."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import selectors
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.store.models import Editor
from tests.support.cli import Ran, environment, newsletter, refused
from tests.support.store import readable

ED = "Ed.Itor@Example.com"
ED_STORED = "ed.itor@example.com"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def cli(make_runtime, tmp_path):
    """Run `newsletter ARGS --config FILE` on an empty store; `stdin` on standard input."""
    runtime = make_runtime()
    config = tmp_path / "n.toml"
    config.write_text(
        f'database_url = "{runtime.settings.database_url}"\npublic_url = "https://news.example"\n'
    )

    def run(*args: str, stdin: str | None = None) -> Ran:
        return newsletter(*args, "--config", str(config), input=stdin, cwd=tmp_path)

    run.runtime = runtime  # type: ignore[attr-defined]
    run.config = config  # type: ignore[attr-defined]
    return run


def listed(cli) -> dict[str, dict]:
    result = cli("editors", "list", "--json")
    assert result.returncode == 0, result.stderr
    return {editor["email"]: editor for editor in json.loads(result.stdout)}


def test_add_list_passwd_remove_and_the_log(cli) -> None:
    assert cli("editors", "list").stdout.startswith("no editors")
    added = cli("editors", "add", ED, "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert (
        added.stdout.strip() == f"editor {ED_STORED} added: they sign in at https://news.example/editor/login"
    )
    editor = listed(cli)[ED_STORED]
    assert editor["last_sign_in_at"] is None and editor["sessions"] == 0
    table = cli("editors", "list")
    assert ED_STORED in table.stdout and "never" in table.stdout
    with cli.runtime.factory() as session:
        stored = session.scalars(select(Editor.password_hash)).one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert not readable(cli.runtime, PASSWORD)  # nowhere in the store
    refused(
        cli("editors", "add", ED_STORED, "--password-stdin", stdin=PASSWORD + "\n"), 1, "already an editor"
    )

    changed = cli("editors", "passwd", ED, "--password-stdin", stdin="another long pass phrase\n")
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.strip() == f"password of {ED_STORED} changed; 0 session(s) ended"
    with cli.runtime.factory() as session:
        assert session.scalars(select(Editor.password_hash)).one() != stored

    removed = cli("editors", "remove", ED)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip() == f"editor {ED_STORED} removed; 0 session(s) ended"
    assert listed(cli) == {}
    refused(cli("editors", "remove", ED), 1, f"no editor {ED_STORED}")
    refused(
        cli("editors", "passwd", ED, "--password-stdin", stdin=PASSWORD + "\n"), 1, f"no editor {ED_STORED}"
    )

    log = cli("editors", "log", "--json")
    assert log.returncode == 0, log.stderr
    entries = json.loads(log.stdout)
    assert [(e["action"], e["target"], e["client"]) for e in entries] == [
        ("editor-removed", ED_STORED, "command line"),
        ("password-changed", ED_STORED, "command line"),
        ("editor-added", ED_STORED, "command line"),
    ]
    assert entries[0]["detail"] == {"sessions_ended": 0} and entries[0]["at"].endswith("+00:00")
    assert len(json.loads(cli("editors", "log", "--json", "--limit", "1").stdout)) == 1
    table = cli("editors", "log")
    assert "editor-removed" in table.stdout and "UTC" in table.stdout
    refused(cli("editors", "log", "--limit", "0"), 2, "--limit")


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short one", "at least 12 characters"),
        ("Password1234!", "most common passwords"),
        ("123456789012", "run of the keyboard"),
        ("qwertyuiopasdf", "run of the keyboard"),
        ("aaaaaaaaaaaaaaaa", "repeats too few characters"),
        ("ed.itor-is-my-password", "contains the address"),
        ("Example2026!", "the name in the address's domain"),
        ("x" * 300, "at most 256"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(cli, password, reason) -> None:
    result = cli("editors", "add", ED, "--password-stdin", stdin=password + "\n")
    refused(result, 2, reason)
    assert password not in result.stderr
    assert listed(cli) == {}


def test_a_password_is_never_asked_where_nobody_can_type_it(cli) -> None:
    refused(cli("editors", "add", ED, stdin=""), 2, "or add --password-stdin and give the password")  # a pipe
    refused(cli("editors", "add", ED, "--password-stdin", stdin=""), 2, "no password")
    refused(cli("editors", "add", "not an address", "--password-stdin", stdin=PASSWORD), 2, "EMAIL")
    assert listed(cli) == {}


def on_terminal(args: list[str], answers: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The command with a terminal as its controlling terminal and standard input, each answer
    typed once a prompt shows there (a hidden prompt flushes what was typed before it)."""
    master, terminal = pty.openpty()

    def controlling() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", *args],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
        cwd=cwd,
        text=True,
        preexec_fn=controlling,
    )
    waiting = selectors.DefaultSelector()
    waiting.register(master, selectors.EVENT_READ)
    try:
        for answer in answers:
            deadline, shown = time.monotonic() + 60, b""
            while not shown.endswith(b" "):  # getpass's prompt, written once the input is flushed
                assert process.poll() is None and time.monotonic() < deadline, "no prompt came"
                if waiting.select(0.1):
                    shown += os.read(master, 1024)
            os.write(master, answer.encode() + b"\n")
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        waiting.close()
        os.close(master)
        os.close(terminal)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.e2e
def test_on_a_terminal_the_password_is_asked_twice_unseen(cli, tmp_path) -> None:
    """A real process with a pseudo-terminal as its controlling terminal, where getpass asks: the
    in-process runner has none (there, a password comes only with --password-stdin)."""
    args = ["editors", "add", ED, "--config", str(cli.config)]
    mismatched = on_terminal(args, [PASSWORD, "something else entirely", PASSWORD, PASSWORD], tmp_path)
    assert mismatched.returncode == 0, mismatched.stderr
    assert f"editor {ED_STORED} added" in mismatched.stdout, mismatched.stdout
    assert "do not match" in mismatched.stdout + mismatched.stderr, mismatched.stdout
    assert PASSWORD not in mismatched.stdout + mismatched.stderr
    assert ED_STORED in listed(cli)
