"""The command line end to end, as an operator runs it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLE
from tests.feedserver import FeedServer, Route
from tests.support.cli import newsletter, run_cli
from tests.support.sending import add_readers, prepared
from tests.support.settings_files import SECRET_ENV, settings_file


def demo_tree(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copytree(ROOT / "subscribers", tmp_path / "subscribers")
    return tmp_path


def test_demo_stores_the_sample_site(tmp_path) -> None:
    cwd = demo_tree(tmp_path)
    env = {
        "NEWSLETTER_CONFIG": "config/demo.toml",
        "NEWSLETTER_SECRET_KEY": "demo-only-secret-key",
        "COLUMNS": "40",
    }
    result = newsletter("demo", env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert "Stored articles" in result.stdout
    assert re.search(r"all\s+│\s+en\s+│\s+46", result.stdout)
    assert re.search(r"Politics\s+│\s+en\s+│\s+8", result.stdout)
    assert (cwd / "demo-output" / "newsletter.db").exists()
    messages = sorted((cwd / "demo-output" / "outbox").glob("edition-*/*.eml"))
    assert len(messages) == 9  # 10 active readers; one takes only the daily
    assert "9 messages in" in " ".join(result.stdout.split())
    # Whole lines, even on a narrow screen: they are pasted into a shell.
    [opener] = [line for line in result.stdout.splitlines() if "xdg-open" in line]
    assert Path(opener.split("xdg-open ", 1)[1]) == messages[0]
    assert "make run-demo" in result.stdout  # and how to start the scheduled job on it
    assert "newsletter.feeds" not in result.stderr  # the feeds table is not logged again
    editions = newsletter("editions", env=env, cwd=cwd)
    assert editions.returncode == 0
    row = next(line for line in editions.stdout.splitlines() if "weekly" in line)
    cells = [cell.strip() for cell in row.split("│")]
    assert cells[3:5] == ["2026-11-23 07:00 CET", "complete"] and cells[7] == "9"  # sent
    again = newsletter("demo", env=env, cwd=cwd)  # idempotent: nothing stored or sent twice
    assert again.returncode == 0 and re.search(r"all\s+│\s+en\s+│\s+46", again.stdout)
    assert sorted((cwd / "demo-output" / "outbox").glob("edition-*/*.eml")) == messages


def test_fetch_exit_status_says_whether_every_feed_was_read(tmp_path, feed_server: FeedServer) -> None:
    feed_server.routes["/ok/"] = Route(body=(SAMPLE / "category-health.xml").read_bytes())
    feed_server.routes["/down/"] = Route(status=503, body=b"down")
    config = tmp_path / "newsletter.toml"
    db = f"sqlite:///{tmp_path / 'n.db'}"
    config.write_text(
        f'database_url = "{db}"\n[fetch]\nallow_private = true\n[[feeds]]\nurl = "{feed_server.url("/ok/")}"\n'
    )
    ok = newsletter("fetch", env={"NEWSLETTER_CONFIG": str(config)}, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "ok" in ok.stdout and "7" in ok.stdout
    config.write_text(config.read_text() + f'[[feeds]]\nurl = "{feed_server.url("/down/")}"\n')
    bad = newsletter("fetch", env={"NEWSLETTER_CONFIG": str(config)}, cwd=tmp_path)
    assert bad.returncode == 1
    assert "HTTP 503" in bad.stderr and "Traceback" not in bad.stderr
    status = newsletter("status", env={"NEWSLETTER_CONFIG": str(config), "COLUMNS": "250"}, cwd=tmp_path)
    assert status.returncode == 0
    rows = {
        line.split("│")[1].strip(): line
        for line in status.stdout.splitlines()
        if "/down/" in line or "/ok/" in line
    }
    down = next(line for url, line in rows.items() if url.endswith("/down/"))
    assert "error" in down and "503" in down and "HTTP 503 Service Unavailable" in down
    assert "ok" in next(line for url, line in rows.items() if url.endswith("/ok/"))
    assert "7 articles stored" in status.stdout


def test_no_feeds_is_a_clear_error(tmp_path) -> None:
    config = tmp_path / "empty.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "n.db"}"\n')
    result = newsletter("fetch", env={"NEWSLETTER_CONFIG": str(config)}, cwd=tmp_path)
    assert result.returncode == 1 and "no feeds configured" in result.stderr


def command_paths() -> list[str]:
    """Every command and sub-command, as typed after `newsletter`."""
    import typer

    from newsletter.cli.app import command

    root = command()
    paths = []
    for name in root.list_commands(typer.Context(root)):
        subcommands = getattr(root.load(name), "commands", None)
        paths += [f"{name} {sub}" for sub in subcommands] if subcommands else [name]
    return paths


def defined_commands() -> set[tuple[str, str]]:
    """(module, attribute) of every command and group the modules of `newsletter.cli` define: a
    module's Typer, or a function taking the context first, every other parameter an option or
    argument, that no Typer has as a sub-command."""
    import importlib
    import inspect
    import pkgutil
    import typing

    import typer
    from typer.models import ParameterInfo

    import newsletter.cli

    groups, functions, below = set(), set(), set()
    for info in pkgutil.iter_modules(newsletter.cli.__path__):
        module = importlib.import_module(f"newsletter.cli.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, typer.Typer) and not value.registered_callback:  # the root has one
                groups.add((info.name, name))
                below.update(c.callback for c in value.registered_commands)
            elif inspect.isfunction(value) and value.__module__ == module.__name__ and name[0] != "_":
                try:
                    hints = typing.get_type_hints(value, include_extras=True)
                except NameError:  # names imported for the type checker only: not a command
                    continue
                params = list(inspect.signature(value).parameters)
                if params[:1] == ["ctx"] and hints.get("return") is type(None):
                    options = [hints.get(p) for p in params[1:]]
                    if all(
                        any(isinstance(m, ParameterInfo) for m in getattr(o, "__metadata__", ()))
                        for o in options
                    ):
                        functions.add((info.name, name, value))
    return groups | {(module, name) for module, name, value in functions if value not in below}


def test_the_command_table_is_the_commands() -> None:
    """`--help` lists the commands from a table, without importing them: every command a module
    defines is in it, and each entry's help is the first paragraph of that command's own."""
    import inspect

    from newsletter.cli.commands import COMMANDS, made

    assert {(entry.module, entry.attribute) for entry in COMMANDS} == defined_commands()
    for entry in COMMANDS:
        first = inspect.cleandoc(made(entry).help or "").split("\n\n")[0]
        assert entry.help == " ".join(first.split()), f"the table's help of `{entry.name}`"


def test_a_command_imports_only_what_it_runs(tmp_path) -> None:
    """`--help`, `status` and `send --help` load neither FastAPI nor uvicorn nor the pages;
    `serve --help` does, which shows the check sees them."""
    config = tmp_path / "n.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "n.db"}"\n')
    script = f"""
import contextlib, io, json, sys
from newsletter.cli.app import main
seen = {{}}
for args in (["--help"], ["status", "--config", {str(config)!r}], ["send", "--help"], ["serve", "--help"]):
    sys.argv = ["newsletter", *args]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main()
        except SystemExit as exc:
            assert exc.code == 0, (args, exc.code)
    web = ("fastapi", "uvicorn", "newsletter.web")
    seen[args[0]] = sorted({{name for name in sys.modules if name.split(".")[0] in web[:2] or name.startswith(web[2])}})
print(json.dumps(seen))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    ran = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(ran.stdout)
    assert seen["--help"] == seen["status"] == seen["send"] == []
    assert "fastapi" in seen["serve"] and "uvicorn" in seen["serve"] and "newsletter.web.app" in seen["serve"]


def test_a_sender_process_imports_only_what_sends(newsroom, mail_api, tmp_path) -> None:
    """`send --edition ID`, as each sender of `send --workers` runs it, through to the provider's
    answer, loads neither the web stack nor premailer (the variants were composed when the
    edition was prepared) nor the syndication (nothing is archived before the edition is
    complete): each sender's start-up is CPU the others' sending could use."""
    add_readers(newsroom, 3)
    edition_id = prepared(newsroom)
    config = settings_file(newsroom, tmp_path, f'provider = "sendgrid"\nsendgrid_host = "{mail_api.host}"\n')
    heavy = (
        "fastapi",
        "starlette",
        "uvicorn",
        "newsletter.web",
        "premailer",
        "feedgen",
        "newsletter.syndication",
    )
    script = f"""
import atexit, json, sys
heavy = {heavy!r}
loaded = lambda: sorted(n for n in sys.modules if n in heavy or n.startswith(tuple(h + "." for h in heavy)))
atexit.register(lambda: print("LOADED", json.dumps(loaded())))
from newsletter.cli.app import main
sys.argv = ["newsletter", "send", "--edition", "{edition_id}", "--config", {str(config)!r}]
main()
"""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")},
        **SECRET_ENV,
        "NEWSLETTER_SENDGRID_API_KEY": "SG.not-the-key",  # the API refuses it: the send stops there
    }
    ran = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert ran.returncode == 1 and "sendgrid refused the send" in ran.stderr, ran.stderr
    assert mail_api.requests == 1  # the whole way: claimed, built, handed over, posted
    assert json.loads(ran.stdout.split("LOADED ", 1)[1]) == []


def readme_rows() -> list[tuple[list[str], set[str]]]:
    """Each row of the README's command table: the commands it names and the options it names."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Commands\n", 1)[1].split("\n#", 1)[0]
    known = command_paths()
    rows = []
    for row in section.splitlines():
        if not row.startswith("| `newsletter "):
            continue
        named = []
        for words in re.findall(r"newsletter ([a-z][a-z-]*(?: [a-z][a-z-]*)?)", row.split(" | ")[0]):
            named.append(words if words in known else words.split()[0])
        rows.append((named, set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", row))))
    return rows


def test_readme_documents_every_command_and_option() -> None:
    """Docs stay honest: every command and sub-command is in the README's table, and every option
    a row names is in that command's --help (which also shows --config and --verbose)."""
    rows = readme_rows()
    documented = {name for named, _options in rows for name in named}
    assert len(command_paths()) >= 16
    assert documented == set(command_paths()), "the README's table and the commands differ"

    def helped(name: str) -> str:
        result = newsletter(*name.split(), "--help", env={"COLUMNS": "250"}, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        return result.stdout

    helps = {name: helped(name) for name in sorted(documented)}
    for named, options in rows:
        for name in named:
            for option in options | {"--config", "--verbose"}:
                assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", helps[name]), (
                    f"the README gives `newsletter {name}` {option}, which its --help does not show"
                )


def test_a_command_from_another_directory_uses_the_same_store_and_outbox(tmp_path) -> None:
    """Relative paths in a settings file follow the file, never the working directory."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "config").mkdir(parents=True)
    elsewhere.mkdir()
    config = project / "config" / "newsletter.toml"
    feeds = "".join(f'[[feeds]]\nurl = "{SAMPLE / name}"\n' for name in ("site.xml", "trending.xml"))
    config.write_text(
        'database_url = "sqlite:///../subscribers/newsletter.db"\noutbox_dir = "../outbox"\n'
        'timezone = "Europe/Brussels"\n[site]\ncategories = ["Politics", "Health", "Europe", "Business", '
        '"Technology", "Culture", "Human Rights"]\n' + feeds
    )
    env = {"NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789", "COLUMNS": "300"}
    far = ["--config", str(config)]
    assert newsletter(*far, "fetch", env=env, cwd=elsewhere).returncode == 0
    readers = ROOT / "subscribers" / "demo-subscribers.csv"
    assert (
        newsletter(
            *far, "subscribers", "import", str(readers), "--confirmed", env=env, cwd=elsewhere
        ).returncode
        == 0
    )
    sent = newsletter(*far, "send", "--at", "2026-11-23T07:00", env=env, cwd=elsewhere)
    assert sent.returncode == 0, sent.stderr
    assert list(elsewhere.iterdir()) == []  # nothing where the command was started
    assert (project / "subscribers" / "newsletter.db").is_file()
    assert len(list((project / "outbox").glob("edition-*/*.eml"))) == 9
    near = ["--config", "config/newsletter.toml"]
    upgrades = [
        newsletter(*args, "db", "upgrade", env=env, cwd=cwd).stdout
        for args, cwd in ((far, elsewhere), (near, project))
    ]
    assert (
        upgrades[0] == upgrades[1] == f"database up to date: sqlite:///{project}/subscribers/newsletter.db\n"
    )
    listed = newsletter(*near, "editions", env=env, cwd=project)
    assert "2026-11-23 07:00 CET" in listed.stdout and "complete" in listed.stdout


def test_shipped_settings_keep_the_store_and_outbox_at_the_top() -> None:
    from newsletter.settings import load_settings

    live = load_settings(ROOT / "config" / "newsletter.toml")
    assert live.database_url == f"sqlite:///{ROOT}/subscribers/newsletter.db"
    assert live.outbox_dir == ROOT / "outbox"
    demo = load_settings(ROOT / "config" / "demo.toml")
    assert demo.database_url == f"sqlite:///{ROOT}/demo-output/newsletter.db"
    assert demo.outbox_dir == ROOT / "demo-output" / "outbox"
    assert demo.templates_path() == ROOT / "templates"


@pytest.mark.e2e
def test_python_m_newsletter_is_the_command_and_its_pipe_gets_whole_lines(tmp_path) -> None:
    """`python -m newsletter` as a process of its own, stdout a real pipe and COLUMNS narrow: the
    module runs the entry point, and the consoles a real start-up makes never cut a table row.
    The in-process runner makes them afresh on its own streams; this shows a process does too."""
    folder = tmp_path / ("a folder with a long name " * 3).strip()
    folder.mkdir()
    feed = folder / "site.xml"
    shutil.copy(SAMPLE / "site.xml", feed)
    config = tmp_path / "n.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "n.db"}"\n[[feeds]]\nurl = "{feed}"\n')
    env = {"NEWSLETTER_CONFIG": str(config), "COLUMNS": "40"}
    fetched = run_cli("fetch", env=env, cwd=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    table_rows = [line for line in fetched.stdout.splitlines() if line.startswith("│")]
    assert table_rows and all(line.endswith("│") for line in table_rows) and "…" not in fetched.stdout
    assert any(f"│ {feed} │" in line for line in table_rows)
    unknown = run_cli("bogus", env=env, cwd=tmp_path)
    assert unknown.returncode == 2 and unknown.stderr.startswith("newsletter: No such command 'bogus'")
    assert len(unknown.stderr.splitlines()) == 1


def test_status_tells_of_plain_http_links_and_readers_of_a_newsletter_no_longer_defined(tmp_path) -> None:
    """A public_url that is not HTTPS (one-click links ignored), and readers taking a newsletter
    whose table was renamed or misspelt (nobody would send it): problems before a send shows them."""
    store = f"sqlite:///{tmp_path / 'n.db'}"
    config = tmp_path / "site.toml"
    config.write_text(f'database_url = "{store}"\n[newsletters.weekly]\ntitle = "Week"\n')
    env = {"NEWSLETTER_SECRET_KEY": "k3y-made-with-secrets-Q9xZ7wLp", "COLUMNS": "250"}
    listed = tmp_path / "readers.csv"
    listed.write_text("email,newsletters\nann@example.org,weekly\n")
    assert (
        newsletter(
            "subscribers", "import", str(listed), "--confirmed", "--config", str(config), env=env
        ).returncode
        == 0
    )
    config.write_text(
        f'database_url = "{store}"\n[newsletters.weekley]\ntitle = "Week"\n'
    )  # a slip of the key
    checked = newsletter("status", "--check", "--config", str(config), env=env, cwd=tmp_path)
    assert checked.returncode == 1
    assert checked.stdout.splitlines() == [
        "public_url http://localhost:8000/ is not HTTPS: Gmail and Yahoo ignore a one-click unsubscribe "
        "link that is not HTTPS, and readers' mail may land in spam; set public_url to the site's https:// "
        "address",
        "1 active reader takes the weekly newsletter, which the settings do not define (a "
        "[newsletters.weekley] is: renamed or misspelt?): nobody sends it to them",
    ]


def test_status_on_a_new_site_names_its_settings_feeds_and_what_blocks_sending(tmp_path, monkeypatch) -> None:
    """Before any fetch or send: status names the settings file and the store it used, lists
    every configured feed as never fetched, and a missing secret key is a problem (said once,
    with how to make one) before any send fails on it."""
    monkeypatch.delenv("NEWSLETTER_SECRET_KEY", raising=False)
    monkeypatch.delenv("NEWSLETTER_CONFIG", raising=False)
    config = tmp_path / "site.toml"
    store = f"sqlite:///{tmp_path / 'n.db'}"
    feeds = "".join(f'[[feeds]]\nurl = "https://news.example/{name}.xml"\n' for name in ("a", "b", "c"))
    config.write_text(
        f'database_url = "{store}"\ntimezone = "America/Chicago"\npublic_url = "https://news.example"\n{feeds}'
    )
    env = {"COLUMNS": "250"}
    shown = newsletter("status", "--config", str(config), env=env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[:2] == [f"settings: {config}", f"store: {store}"]
    for name in ("a", "b", "c"):
        [row] = [line for line in shown.stdout.splitlines() if f"https://news.example/{name}.xml" in line]
        assert "never fetched" in row
    key = "nothing can be sent: NEWSLETTER_SECRET_KEY is not set; make one with"
    assert f"problem: {key}" in shown.stderr
    as_json = json.loads(
        newsletter("status", "--json", "--config", str(config), env=env, cwd=tmp_path).stdout
    )
    assert (as_json["settings_file"], as_json["store"]) == (str(config), store)
    assert len(as_json["feeds"]) == 3 and {feed["status"] for feed in as_json["feeds"]} == {None}

    checked = newsletter("status", "--check", "--config", str(config), env=env, cwd=tmp_path)
    assert checked.returncode == 1 and checked.stderr == ""
    assert checked.stdout.count(key) == 1 and len(checked.stdout.splitlines()) == 1
    checked = newsletter("status", "--check", "--json", "--config", str(config), env=env, cwd=tmp_path)
    assert checked.stdout.count(key) == 1 and json.loads(checked.stdout)["problems"][0].startswith(key)
    keyed = {**env, "NEWSLETTER_SECRET_KEY": "k3y-made-with-secrets-Q9xZ7wLp"}
    fine = newsletter("status", "--check", "--config", str(config), env=keyed, cwd=tmp_path)
    assert (fine.returncode, fine.stdout) == (0, "")

    home = tmp_path / "home"  # no settings file anywhere: defaults, said so
    home.mkdir()
    bare = newsletter(
        "status", env={**env, "NEWSLETTER_HOME": str(home), "NEWSLETTER_DATABASE_URL": store}, cwd=home
    )
    assert bare.returncode == 0, bare.stderr
    assert bare.stdout.splitlines()[:2] == ["settings: defaults (no settings file)", f"store: {store}"]
