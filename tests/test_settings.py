"""Settings: precedence, secrets, one clear line for a wrong value, and an honest example file."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from pydantic import BaseModel
from sqlalchemy.engine import make_url

from newsletter.editions.compose import Card, Composer, DigestView, TemplateProblem
from newsletter.errors import SettingsError
from newsletter.settings import NewsletterSettings, Settings, SiteSettings, load_settings, masked
from tests.conftest import ROOT, _truncate
from tests.support.cli import newsletter

EXAMPLE = ROOT / "config" / "newsletter.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


def test_defaults_file_then_environment(tmp_path, monkeypatch) -> None:
    assert Settings().database_url == "sqlite:///subscribers/newsletter.db"
    assert Settings().provider == "outbox"
    path = write(
        tmp_path,
        'provider = "smtp"\nsmtp_port = 2525\n[site]\nname = "File"\n[[feeds]]\nurl = "feeds/site.xml"\n',
    )
    settings = load_settings(path)
    assert (settings.provider, settings.smtp_port, settings.site.name) == ("smtp", 2525, "File")
    assert settings.feeds[0].url == str(tmp_path / "feeds" / "site.xml")  # relative to the file
    monkeypatch.setenv("NEWSLETTER_SMTP_PORT", "2526")
    monkeypatch.setenv("NEWSLETTER_SITE__NAME", "Env")
    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", "hunter2-from-env")
    settings = load_settings(path)
    assert (settings.smtp_port, settings.site.name) == (2526, "Env")
    assert settings.smtp_password.get_secret_value() == "hunter2-from-env"
    assert "hunter2" not in repr(settings)


def test_config_file_from_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(write(tmp_path, 'timezone = "Europe/Brussels"\n')))
    assert load_settings().timezone == "Europe/Brussels"
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(SettingsError, match="NEWSLETTER_CONFIG"):
        load_settings()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('secret_key = "in-the-file-0123456789"', "secret_key"),
        ('sendgrid_api_key = "SG.x"', "sendgrid_api_key"),
        ("smtp_port = 99999", "smtp_port"),
        ('smtp_tls = "maybe"', "smtp_tls"),
        ('timezone = "Mars/Olympus"', "timezone"),
        ('provder = "smtp"', "provder"),
        ('[site]\nfrom_address = "not-an-address"', "site.from_address"),
        ('[[feeds]]\nurl = "ftp://x.example/feed"', "feeds.0.url"),
        ('database_url = "mysql://x"', "database_url"),
        ("this is not toml", "settings.toml"),
    ],
)
def test_bad_settings_name_the_key(tmp_path, text, key) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(write(tmp_path, text + "\n"))
    assert caught.value.key.endswith(key)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            'timezone = "America/Chicgo"',
            "bad setting timezone: unknown time zone 'America/Chicgo': did you mean 'America/Chicago'?",
        ),
        (
            'timezone = "new york"',
            "bad setting timezone: unknown time zone 'new york': did you mean 'America/New_York'?",
        ),
        (
            'timezone = "europe/berlin"',
            "bad setting timezone: unknown time zone 'europe/berlin': did you mean 'Europe/Berlin'?",
        ),
        (
            'timezone = "Mars/Olympus"',
            "bad setting timezone: unknown time zone 'Mars/Olympus': use an IANA name like 'Europe/Brussels'",
        ),
        ('provder = "smtp"', "bad setting provder: unknown setting; did you mean 'provider'?"),
        ('[site]\nnam = "x"', "bad setting site.nam: unknown setting; did you mean 'name'?"),
        (
            '[newsletters.weekly]\ntitel = "x"',
            "bad setting newsletters.weekly.titel: unknown setting; did you mean 'title'?",
        ),
        (
            '[[feeds]]\nurl = "https://x.example/feed"\ncategori = "x"',
            "bad setting feeds.0.categori: unknown setting; did you mean 'category'? (the [[feeds]] table of "
            "https://x.example/feed)",
        ),
        (  # the word people reach for, not the nearest spelling ('title')
            '[newsletters.daily]\ntime = "06:30"',
            "bad setting newsletters.daily.time: unknown setting; did you mean 'at'?",
        ),
    ],
)
def test_a_wrong_setting_reads_as_one_plain_line_with_the_closest_key(tmp_path, text, line) -> None:
    """No library prefix ("Value error, "), the value once, and what was probably meant."""
    with pytest.raises(SettingsError) as caught:
        load_settings(write(tmp_path, text + "\n"))
    assert str(caught.value) == line


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("news, weekly", "holds ','"),
        ("a;b", "holds ';'"),
        ("a|b", "holds '|'"),
        (" weekly", "has spaces around it"),
    ],
)
def test_a_newsletter_name_no_csv_cell_could_spell_is_refused(tmp_path, name, problem) -> None:
    """Lists split on , ; | (CSV cells, --newsletters): such a name could never be named, and the
    tool's own export would not import again."""
    with pytest.raises(SettingsError) as caught:
        load_settings(write(tmp_path, f'[newsletters."{name}"]\ntitle = "News"\n'))
    assert str(caught.value) == (
        f"bad setting newsletters: the name {name!r} {problem}: a newsletter's name is a word like "
        "weekly (it is used in CSV cells, links and --newsletters)"
    )
    assert load_settings(write(tmp_path, '[newsletters.news-weekly]\ntitle = "News"\n')).newsletters


def test_an_unknown_newsletter_variable_is_refused_or_warned_about(tmp_path, monkeypatch, caplog) -> None:
    """A misspelt NEWSLETTER_* variable stops with its likely name; one unlike any setting is
    named in a warning: neither is ignored without a word."""
    path = write(tmp_path, "")
    monkeypatch.setenv("NEWSLETTER_PROVDER", "sendgrid")
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    assert (
        str(caught.value)
        == "bad setting NEWSLETTER_PROVDER: no such setting; did you mean NEWSLETTER_PROVIDER?"
    )
    monkeypatch.delenv("NEWSLETTER_PROVDER")
    monkeypatch.setenv("NEWSLETTER_WIDGETS", "3")
    with caplog.at_level("WARNING", logger="newsletter.settings"):
        assert load_settings(path).provider == "outbox"
    assert "NEWSLETTER_WIDGETS is not a setting and is ignored" in caplog.text
    for variable, line in (
        ("NEWSLETTER_SITE__NAM", "no such setting; did you mean NEWSLETTER_SITE__NAME?"),
        (
            "NEWSLETTER_NEWSLETTERS__DAILY__TIME",
            "no such setting; did you mean NEWSLETTER_NEWSLETTERS__DAILY__AT?",
        ),
        ("NEWSLETTER_FEEDS__0__URLL", "no such setting; did you mean NEWSLETTER_FEEDS__0__URL?"),
        ("NEWSLETTER_SITE__ZZZZZZ", "no such setting in [site]"),
    ):
        monkeypatch.setenv(variable, "x")
        with pytest.raises(SettingsError) as caught:
            load_settings(path)
        assert str(caught.value) == f"bad setting {variable}: {line}"
        monkeypatch.delenv(variable)
    monkeypatch.setenv("NEWSLETTER_PORT", "8000")  # a deployment's own, not near enough to refuse
    with caplog.at_level("WARNING", logger="newsletter.settings"):
        assert load_settings(path).smtp_port == 587
    assert "NEWSLETTER_PORT is not a setting and is ignored" in caplog.text
    caplog.clear()
    monkeypatch.delenv("NEWSLETTER_PORT")
    monkeypatch.delenv("NEWSLETTER_WIDGETS")
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(path))
    monkeypatch.setenv("NEWSLETTER_SITE__NAME", "Env")
    with caplog.at_level("WARNING", logger="newsletter.settings"):
        assert load_settings().site.name == "Env"
    assert caplog.text == ""


def test_a_missing_secret_key_says_how_to_make_one() -> None:
    with pytest.raises(SettingsError, match=r"not set; make one with `python3 -c 'import secrets") as caught:
        Settings().signing_key()
    assert "voids every link" in str(caught.value)


def test_placeholder_secret_refused_outside_the_demo() -> None:
    with pytest.raises(SettingsError, match="secret_key"):
        Settings().signing_key()
    with pytest.raises(SettingsError, match="placeholder"):
        Settings(secret_key="change-me").signing_key()
    assert Settings(secret_key="change-me", demo=True).signing_key() == b"change-me"
    assert Settings(secret_key="a-long-and-random-key-0123").signing_key()


@pytest.mark.parametrize(
    "key",
    [
        "changeme-changeme-changeme",
        "CHANGE_ME_CHANGE_ME_CHANGE_ME",
        "change me, change me, change me",
        "changemechangemechangeme",
        "secretsecretsecretsecret",
        "Password-Password-Password",
        "your-secret-key-here",
        "YourSecretKeyGoesHere",
        "replace-with-your-signing-key",
        "example-example-example",
        "test-test-test-test-test",
        "demo-only-secret-key",
        "my-super-secret-key-2024",
        "xxxxxxxxxxxxxxxxxxxxxxxx",
        "aaaaaaaaaaaaaaaaaaaaaaaa",
        "abababababababababababab",
        "1234567-1234567-1234567",
        "short-Key-9",
    ],
)
def test_a_placeholder_like_secret_is_refused_outside_the_demo(key) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings(secret_key=key).signing_key()
    assert caught.value.key == "secret_key" and key not in str(caught.value)
    assert Settings(secret_key=key, demo=True).signing_key() == key.encode()


@pytest.mark.parametrize(
    "key", ["test-secret-key-0123456789", "benchmark-secret-key-0123", "q8Vd2-LrX0p-Zt7Wm-4hKs"]
)
def test_a_varied_secret_is_accepted(key) -> None:
    assert Settings(secret_key=key).signing_key() == key.encode()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[site]\nlanguage = "xx"', "site.language"),
        ('[site]\nlanguage = "english"', "site.language"),
        ('[[feeds]]\nurl = "de.xml"\nlanguage = "qq"', "feeds.0.language"),
        ('[[feeds]]\nurl = "de.xml"\nlanguage = "zz-DE"', "feeds.0.language"),
    ],
)
def test_an_unknown_language_is_a_wrong_setting(tmp_path, text, key) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(write(tmp_path, text + "\n"))
    assert caught.value.key == key and "language code" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_language_tag_keeps_its_primary_subtag_as_feeds_do() -> None:
    settings = Settings(site={"language": "pt-BR"}, feeds=[{"url": "x.xml", "language": "DE_at"}])
    assert (settings.site.language, settings.feeds[0].language) == ("pt", "de")
    assert Settings(site={"language": "fil"}).site.language == "fil"


def test_sendgrid_needs_a_key() -> None:
    with pytest.raises(ValueError, match="NEWSLETTER_SENDGRID_API_KEY"):
        Settings(provider="sendgrid")


def test_wrong_setting_stops_any_command_with_one_line(tmp_path) -> None:
    for args in (["fetch"], ["db", "upgrade"], ["demo"]):
        result = newsletter(
            *args,
            env={"NEWSLETTER_SMTP_PORT": "abc", "NEWSLETTER_CONFIG": str(EXAMPLE)},
            cwd=tmp_path,
        )
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "smtp_port" in lines[0], result.stderr
        assert "Traceback" not in result.stderr


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    found = []
    for name, field in model.model_fields.items():
        found.append(prefix + name)
        annotation = field.annotation
        inner = getattr(annotation, "__args__", (annotation,))
        for candidate in inner:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                found.extend(_keys(candidate, prefix + name + "."))
    return found


def test_example_file_documents_every_setting_and_loads() -> None:
    text = EXAMPLE.read_text()
    for key in _keys(Settings):
        name = key.rsplit(".", 1)[-1]
        as_key = re.search(rf"^#?\s*{re.escape(name)}\s*[=:]", text, re.M)
        as_table = re.search(rf"\[\[?(\w+\.)?{re.escape(name)}[\].]", text)
        assert as_key or as_table, f"{key} is missing from {EXAMPLE.name}"
    settings = load_settings(EXAMPLE)
    assert settings.feeds and settings.site.name


def test_shipped_config_files_load() -> None:
    for path in (ROOT / "config").glob("*.toml"):
        load_settings(path)


def test_home_folder_is_absolute_and_the_same_for_every_lookup(tmp_path, monkeypatch) -> None:
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "newsletter.toml").write_text('timezone = "Europe/Brussels"\n')
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NEWSLETTER_HOME", "~/home")
    settings = load_settings()  # the file under ~/home was found, and paths follow it
    assert settings.timezone == "Europe/Brussels"
    assert settings.database_url == f"sqlite:///{home}/subscribers/newsletter.db"
    assert settings.outbox_dir == home / "outbox"
    assert settings.templates_path() == ROOT / "templates"  # home has none: the checkout's
    monkeypatch.setenv("NEWSLETTER_HOME", "relative/home")
    result = newsletter("status", env={"NEWSLETTER_HOME": "relative/home"}, cwd=tmp_path)
    assert result.returncode == 2 and "absolute" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "relative").exists()


def test_a_database_password_is_never_echoed(tmp_path) -> None:
    result = newsletter(
        "status", env={"NEWSLETTER_DATABASE_URL": "mysql://bob:hunter2secret@db/n"}, cwd=tmp_path
    )
    assert result.returncode == 2 and "database_url" in result.stderr
    assert "hunter2secret" not in result.stderr and "bob:***@db" in result.stderr


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://news:pa/ss?w#rd@db.internal:5432/news", "postgresql://news:***@db.internal:5432/news"),
        (
            "postgresql://news@db.internal/news?password=hunter2secret&sslpassword=x&sslmode=require",
            "postgresql://news@db.internal/news?password=***&sslpassword=***&sslmode=require",
        ),
        ("sqlite:///subscribers/newsletter.db", "sqlite:///subscribers/newsletter.db"),
        ("postgresql://bob:Tr0ub@dor@db.internal/news", "postgresql://bob:***@db.internal/news"),
        ("postgresql://news@db.internal:5432/news", "postgresql://news@db.internal:5432/news"),
    ],
)
def test_a_database_password_is_masked_however_it_is_given(url, shown) -> None:
    """`status` names its store on every run: a password in the user part, spelt with `@`, `/`,
    `?` or `#` unencoded (SQLAlchemy takes it), or in the query, never shows."""
    assert masked(url) == shown


@pytest.mark.parametrize(
    "text",
    [
        'SECRET_KEY = "in-the-file-0123456789"',
        'Secret_Key = "in-the-file-0123456789"',
        '[site]\nsecret_key = "in-the-file-0123456789"',
        'site.SendGrid_API_Key = "in-the-file-0123456789"',
        '[[feeds]]\nurl = "feed.xml"\nsmtp_password = "in-the-file-0123456789"',
        '[newsletters.weekly]\nSMTP_PASSWORD = "in-the-file-0123456789"',
        'secret_key = { value = "in-the-file-0123456789" }',
    ],
)
def test_a_secret_is_refused_whatever_its_case_and_wherever_it_hides(tmp_path, text) -> None:
    with pytest.raises(SettingsError, match="environment only") as caught:
        load_settings(write(tmp_path, text + "\n"))
    assert "in-the-file" not in str(caught.value)


def test_setting_names_in_a_file_are_lower_case(tmp_path) -> None:
    """pydantic-settings matches names in any case: `OUTBOX_DIR` would escape the file-relative paths."""
    with pytest.raises(SettingsError, match="outbox_dir"):
        load_settings(write(tmp_path, 'OUTBOX_DIR = "out"\n'))


def test_secrets_from_the_environment_in_any_case(tmp_path, monkeypatch) -> None:
    """The environment is where secrets belong, however the variable is spelled; inside a table they
    are unknown settings, and their value is never echoed."""
    monkeypatch.setenv("NEWSLETTER_secret_key", "from-the-environment-0123")
    settings = load_settings(write(tmp_path, ""))
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == "from-the-environment-0123"
    monkeypatch.setenv("NEWSLETTER_SITE__SECRET_KEY", "hidden-in-a-table-0123")
    with pytest.raises(SettingsError, match="site") as caught:
        load_settings(write(tmp_path, ""))
    assert "hidden-in-a-table" not in str(caught.value)


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("{{ top.title", "unexpected end of template"),
        ("{{ top.title | shout }}", "no filter named 'shout'"),
        ("{% if count > 1 %}{{ top.title | shout }}{% endif %}", "no filter named 'shout'"),
        ("{% if top is famous %}x{% endif %}", "no test named 'famous'"),
        ("{{ tittle }}", "unknown name 'tittle'"),
        ("{{ cycler.__init__.__globals__.os.environ }}", "may not reach the attribute '__"),
        ("{{ top | attr('__class__') }}", "may not reach the attribute '__class__'"),
        ("{{ site['_secret'] }}", "may not reach the attribute '_secret'"),
    ],
)
def test_a_broken_subject_or_preheader_is_refused_when_the_settings_load(tmp_path, template, words) -> None:
    for key in ("subject", "preheader"):
        path = tmp_path / "n.toml"
        path.write_text(f"[newsletters.weekly]\n{key} = '''{template}'''\n")
        with pytest.raises(SettingsError) as caught:
            load_settings(path)
        assert caught.value.key == f"newsletters.weekly.{key}"
        assert words in str(caught.value).lower() and "\n" not in str(caught.value)
    result = newsletter("status", env={"NEWSLETTER_CONFIG": str(path)}, cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "newsletters.weekly.preheader" in result.stderr


def test_the_default_and_shipped_templates_load() -> None:
    weekly = Settings().newsletter("weekly")
    assert NewsletterSettings(subject=weekly.subject, preheader=weekly.preheader)
    assert NewsletterSettings(subject="{% set n = namespace(x=1) %}{{ site.name }} {{ range(count) | list }}")


def test_subject_and_preheader_render_in_the_sandbox() -> None:
    """Settings refuse the obvious escape when they load; this checks the rendering itself
    (newsletter/editions/compose.py) stops it when such a template gets past them."""
    escape = "{{ cycler.__init__.__globals__.os.environ }}"
    newsletter = NewsletterSettings.model_construct(
        **{**NewsletterSettings().model_dump(), "subject": escape}
    )
    card = Card("https://x.example/a", "A title", None, "22 Nov 2026", "", None, "Health", None, None)
    view = DigestView(
        newsletter, SiteSettings(), "en", "22 November 2026", [], [("Health", [card])], ["Health"]
    )
    with pytest.raises(TemplateProblem, match="unsafe"):
        Composer(ROOT / "templates").compose(view)


def test_a_database_password_is_never_printed_when_the_store_is_unreachable(tmp_path) -> None:
    url = "postgresql://postgres:hunter2secret@127.0.0.1:1/x"
    result = newsletter("db", "upgrade", env={"NEWSLETTER_DATABASE_URL": url}, cwd=tmp_path)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "hunter2secret" not in result.stderr and "postgres:***@127.0.0.1:1/x" in result.stderr
    # an @ in the password: the driver reads part of it as the host, and says so; no part shows
    split = newsletter(
        "status", env={"NEWSLETTER_DATABASE_URL": "postgresql://bob:Tr0ub@dor@127.0.0.1:1/x"}, cwd=tmp_path
    )
    assert split.returncode == 1 and "bob:***@127.0.0.1:1/x" in split.stderr, split.stderr
    assert "Tr0ub" not in split.stderr and "dor" not in split.stderr


@pytest.mark.postgres
def test_db_upgrade_and_demo_print_the_database_without_its_password(postgres_database, tmp_path) -> None:
    """The server trusts loopback, so a URL with a password opens it: what is printed must hide it."""
    _truncate(postgres_database)
    url = make_url(postgres_database).set(password="hunter2secret").render_as_string(hide_password=False)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copytree(ROOT / "subscribers", tmp_path / "subscribers")
    env = {
        "NEWSLETTER_DATABASE_URL": url,
        "NEWSLETTER_CONFIG": "config/demo.toml",
        "NEWSLETTER_SECRET_KEY": "demo-only-secret-key",
    }
    for args in (["db", "upgrade"], ["--verbose", "demo"]):
        result = newsletter(*args, env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "hunter2secret" not in result.stdout + result.stderr
        assert f"postgresql://postgres:***@{make_url(url).host}" in result.stdout


def test_every_source_file_the_docs_point_at_exists() -> None:
    """A moved module leaves no reader of the example settings or the README looking for it."""
    for doc in (EXAMPLE, ROOT / "README.md"):
        named = set(
            re.findall(
                r"(?<![/\w.])(?:newsletter|templates|config|tests)/[\w/.-]+\.(?:py|toml|html|txt|css)\b",
                doc.read_text(),
            )
        )
        missing = sorted(path for path in named if not (ROOT / path).exists())
        assert not missing, f"{doc.name} names {missing}"
