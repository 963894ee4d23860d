"""An editor's note per edition (issue #24, part 1): per language, after the greeting and before
Trending in the HTML and the text part; the edition's own, else the newsletter's standing note,
else the site language's; set by the command, the editors' page or the service, each change
logged and a prepared edition prepared again (its approval withdrawn), refused once a sender
began; hostile notes stay inert data; preview, the checks and the archive show it."""

from __future__ import annotations

import email
import email.policy
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from html.parser import HTMLParser

import httpx
import pytest
from sqlalchemy import select, update

from newsletter import notes, published
from newsletter.editions.edition import EditionError
from newsletter.errors import InputError, SettingsError
from newsletter.services import audit, editors, sending, upcoming
from newsletter.services import checks as checks_service
from newsletter.settings import load_settings
from newsletter.store.db import unit_of_work
from newsletter.store.models import Edition, EditionNote, Variant
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import EditionStatus
from tests.conftest import WEEKLY_NOV_23
from tests.support.editors import ED, signed_in
from tests.support.outbox import messages, send
from tests.support.upcoming import desk_of, prepare
from tests.support.web import Forms, Site, serve

BEFORE = WEEKLY_NOV_23 - timedelta(hours=20)
ON_TIME = WEEKLY_NOV_23 + timedelta(minutes=1)
GERMAN = {"anna.keller@example.com", "lena.schmidt@example.de", "klaus.weber@example.de"}
DE_NOTE = "Guten Morgen: drei Dinge *zählen* heute, [hier](https://example.com/de) mehr.\n\nZweiter Absatz."
EN_NOTE = "Good morning: three things **matter** today, [more](https://example.com/en)."
HOSTILE = (
    "<script>alert(1)</script> <img src=x onerror=alert(1)> {{ 7 * 7 }} {% for x in y %}x{% endfor %} "
    "__NL_GREETING__ [safe](https://ok.example/a?b=1&c=2)\n\n"
    '[spoof](https://ok.example/" onmouseover="alert(1)) ![image](https://img.example/i.png)'
)


def with_weekly(runtime: Runtime, **changes: object) -> None:
    settings = runtime.settings
    weekly = settings.newsletters["weekly"].model_copy(update=changes)
    runtime.settings = settings.model_copy(update={"newsletters": {**settings.newsletters, "weekly": weekly}})


def parts(message: EmailMessage) -> tuple[str, str]:
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    assert html is not None and text is not None
    return str(html.get_content()), str(text.get_content())


def attributes(html: str) -> set[str]:
    """Every attribute name the document's elements carry."""
    found: set[str] = set()

    class Attributes(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.update(name for name, _value in attrs)

    Attributes().feed(html)
    return found


def variant_texts(runtime: Runtime) -> dict[str, set[str]]:
    """Each language's variants' text parts."""
    found: dict[str, set[str]] = {}
    with runtime.factory() as session:
        for row in session.scalars(select(Variant)):
            found.setdefault(row.language, set()).add(row.text)
    return found


@pytest.mark.both_databases
def test_a_note_in_each_language_reaches_its_readers_in_html_and_text(newsroom) -> None:
    # The standing note is the site language's (English); German readers get the edition's own.
    with_weekly(newsroom, note="Standing *English* note.")
    editors.set_note(newsroom, "weekly", "de", DE_NOTE, BEFORE, ED)
    report = send(newsroom, "weekly", ON_TIME)
    assert report.status == "complete", report
    sent = messages(newsroom, report.edition_id)
    assert len(sent) == 9
    for message in sent:
        html, text = parts(message)
        german = message["To"].addresses[0].addr_spec in GERMAN
        if german:
            assert "<em>zählen</em>" in html and 'href="https://example.com/de"' in html
            assert ">Zweiter Absatz.</p>" in html and "Standing" not in html
            assert "drei Dinge *zählen* heute, hier (https://example.com/de) mehr." in " ".join(text.split())
            note_at, greeting_at = html.index("Guten Morgen"), html.index("Hallo")
            assert greeting_at < note_at < html.index(">Im Trend<")
            assert text.index("Hallo") < text.index("Guten Morgen") < text.index("IM TREND")
        else:
            assert "Standing <em>English</em> note." in html and "Guten Morgen" not in html
            assert "Standing *English* note." in text
            assert html.index("Hello") < html.index("Standing") < html.index(">Trending<")
            assert text.index("Hello") < text.index("Standing") < text.index("TRENDING")


def test_which_note_a_reader_gets() -> None:
    own, standing = {"de": "edition de"}, {"en": "standing en", "fr": "standing fr"}
    assert notes.note_for("de", "en", own, standing) == "edition de"
    assert notes.note_for("fr", "en", own, standing) == "standing fr"
    assert notes.note_for("nl", "en", own, standing) == "standing en"  # the site language's
    assert notes.note_for("en", "en", {"en": "edition en"}, standing) == "edition en"
    assert notes.note_for("nl", "en", {}, {}) is None


@pytest.mark.both_databases
def test_a_change_prepares_a_prepared_edition_again_and_withdraws_its_approval(newsroom) -> None:
    with_weekly(newsroom, approval="required")
    editors.decide(newsroom, "weekly", "approve", BEFORE, ED)
    edition_id, _warnings = sending.prepare_next(newsroom, "weekly", BEFORE, ahead_ok=True, force=True)
    assert not any("Good morning" in t for t in variant_texts(newsroom)["en"])
    editors.set_note(newsroom, "weekly", None, EN_NOTE, BEFORE, "second@example.org")
    with newsroom.factory() as session:
        edition = session.get_one(Edition, edition_id)
        assert edition.status == EditionStatus.READY and edition.approved_at is None
    assert all("three things **matter** today" in t for t in variant_texts(newsroom)["en"])
    assert all("three things" in t for t in variant_texts(newsroom)["de"])  # the site language's
    [entry] = audit.entries(newsroom, 1)
    assert (entry.action, entry.editor, entry.target) == (
        "edition note",
        "second@example.org",
        "weekly 2026-11-23T07:00",
    )
    assert entry.detail == {
        "language": "en",
        "note": EN_NOTE,
        "approval": "withdrawn: changed after it was approved",
    }
    editors.set_note(newsroom, "weekly", "en", EN_NOTE, BEFORE, ED)  # the same: nothing to do
    assert len([e for e in audit.entries(newsroom, 20) if e.action == "edition note"]) == 1
    editors.set_note(newsroom, "weekly", "en", "  ", BEFORE, ED)  # blank: removed
    assert not any("three things" in t for texts in variant_texts(newsroom).values() for t in texts)
    assert audit.entries(newsroom, 1)[0].detail == {"language": "en", "note": None, "removed": True}


@pytest.mark.both_databases
def test_no_change_once_a_sender_began(newsroom) -> None:
    edition_id, _warnings = sending.prepare_next(newsroom, "weekly", BEFORE, ahead_ok=True, force=True)
    with unit_of_work(newsroom.factory) as session:
        session.execute(update(Edition).where(Edition.id == edition_id).values(status=EditionStatus.SENDING))
    with pytest.raises(EditionError, match="too late"):
        editors.set_note(newsroom, "weekly", "en", EN_NOTE, BEFORE, ED)
    with newsroom.factory() as session:
        assert session.scalars(select(EditionNote)).all() == []
    assert not [e for e in audit.entries(newsroom, 10) if e.action == "edition note"]


def test_hostile_notes_stay_inert_data(newsroom) -> None:
    editors.set_note(newsroom, "weekly", "en", HOSTILE, BEFORE, ED)
    shown = editors.preview(newsroom, "weekly", BEFORE, language="en")
    assert shown.html is not None and shown.text is not None
    html, text = shown.html, " ".join(shown.text.split())  # the text part wraps the note's lines
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(1)&gt;" in html
    assert "{{ 7 * 7 }}" in html and "49" not in html.split("Hello", 1)[1].split("Trending")[0]
    assert "{% for x in y %}x{% endfor %}" in text  # never a template
    assert "__NL_GREETING__" in text and "<strong>NL_GREETING</strong>" in html  # never a placeholder
    assert 'href="https://ok.example/a?b=1&amp;c=2"' in html
    assert attributes(html).isdisjoint({"onmouseover", "onerror", "onclick"})  # text, never markup
    assert 'src="https://img.example' not in html  # no images
    for bad, said in (
        ("[click](javascript:alert(1))", "http or https addresses only"),
        ("[click](JaVaScRiPt:alert(1))", "http or https addresses only"),
        ("[mail](mailto:x@example.com)", "http or https addresses only"),
        ("[here](/relative)", "http or https addresses only"),
        ("x" * (notes.MAX_NOTE + 1), f"at most {notes.MAX_NOTE} characters, not {notes.MAX_NOTE + 1}"),
        ("bell \x07 here", "control character U+0007"),
        ("see \u202egnp.exe", "invisible character U+202E"),  # reads as "exe.png"
        ("*" * 300 + "deep" + "*" * 300, "at most 8 deep, not 150"),  # past ~255, lxml cut the digest
    ):
        with pytest.raises(InputError, match=re.escape(said)):
            editors.set_note(newsroom, "weekly", "en", bad, BEFORE, ED)
    with pytest.raises(InputError, match="offers en, de"):
        editors.set_note(newsroom, "weekly", "fr", "Bonjour", BEFORE, ED)
    with pytest.raises(InputError, match="language"):
        editors.set_note(newsroom, "weekly", "not a language", "x", BEFORE, ED)
    assert notes.cleaned("x" * notes.MAX_NOTE) == "x" * notes.MAX_NOTE  # the limit itself is fine
    assert notes.cleaned("Familie 👨\u200d👩\u200d👧, ***sehr*** _wichtig_") is not None  # joiners stay


def test_standing_notes_in_the_settings_file(tmp_path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(
        '[newsletters.weekly]\nnote = "Our *standing* note."\n'
        '[newsletters.weekly.translations.de]\nnote = "Unsere Notiz."\ntitle = "Wochenüberblick"\n',
        encoding="utf-8",
    )
    weekly = load_settings(good).newsletter("weekly")
    assert weekly.standing_notes("en") == {"en": "Our *standing* note.", "de": "Unsere Notiz."}
    assert weekly.in_language("de").title == "Wochenüberblick"
    bad = tmp_path / "bad.toml"
    bad.write_text('[newsletters.weekly]\nnote = "[x](javascript:alert(1))"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match=r"newsletters\.weekly\.note.*http or https"):
        load_settings(bad)


def test_the_checks_fetch_the_notes_links(newsroom, monkeypatch) -> None:
    asked: list[str] = []
    monkeypatch.setattr(checks_service, "_answers", lambda urls, _fetch: asked.extend(urls) or [])
    editors.set_note(newsroom, "weekly", "de", DE_NOTE, BEFORE, ED)
    checks_service.run(newsroom, "weekly", BEFORE)
    assert "https://example.com/de" in asked and any("europeantimes" in url for url in asked)


@pytest.fixture
def desk(newsroom, tmp_path) -> Iterator[Site]:
    yield from desk_of(newsroom, tmp_path)


def page(client: httpx.Client) -> str:
    answer = client.get("/editor/upcoming/weekly")
    assert answer.status_code == 200, answer.text
    return answer.text


def post_note(client: httpx.Client, language: str, note: str) -> httpx.Response:
    form = Forms(page(client)).form("/editor/upcoming/weekly/note")
    return client.post(
        "/editor/upcoming/weekly/note", data={"csrf": form["csrf"], "language": language, "note": note}
    )


def test_the_editors_page_sets_shows_and_removes_a_note(desk) -> None:
    with desk.client() as client:
        signed_in(client)
        assert "Readers of this language get no note." in page(client)
        assert client.post("/editor/upcoming/weekly/note", data={"csrf": "x", "note": "x"}).status_code == 403
        answer = post_note(client, "de", HOSTILE)
        assert answer.status_code == 303 and answer.headers["location"].endswith("done=note#note")
        shown = page(client)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown and "<script>alert" not in shown
        assert "The note is saved for this edition." in client.get(answer.headers["location"]).text
        refused = post_note(client, "de", "[x](javascript:alert(1))")
        assert refused.status_code == 409 and "http or https addresses only" in refused.text
        too_long = post_note(client, "en", "y" * 5000)
        assert too_long.status_code == 409 and "not 5000" in too_long.text
        prepare(desk)
        assert post_note(client, "de", DE_NOTE).status_code == 303
        assert "<em>zählen</em>" in page(client)
        german = [row for row in desk.runtime.settings.languages() if row == "de"]
        assert german
        texts = variant_texts(desk.runtime)
        assert all("Guten Morgen" in t for t in texts["de"]) and not any(
            "Guten Morgen" in t for t in texts["en"]
        )
        assert post_note(client, "de", "").headers["location"].endswith("done=unnoted#note")
        assert not any("Guten Morgen" in t for t in variant_texts(desk.runtime)["de"])
    actions = [(e.action, e.editor) for e in audit.entries(desk.runtime, 10)]
    assert actions.count(("edition note", ED)) == 3


def test_the_command_sets_and_clears_a_note(desk, tmp_path) -> None:
    at = ("--at", desk.clock().isoformat())
    done = desk.cli("edition", "note", "-", "--language", "de", *at, stdin=DE_NOTE)
    assert done.returncode == 0, done.stderr
    assert "the de note set on the weekly edition of" in done.stdout
    with desk.client() as client:
        signed_in(client)
        assert "<em>zählen</em>" in page(client)
    written = tmp_path / "note.md"
    written.write_text(EN_NOTE, encoding="utf-8")
    assert desk.cli("edition", "note", str(written), "-n", "weekly", *at).returncode == 0
    preview = desk.cli("preview", "--text", *at)
    assert preview.returncode == 0
    assert "three things **matter** today, more (https://example.com/en)." in " ".join(preview.stdout.split())
    cleared = desk.cli("edition", "note", "--clear", "--language", "de", *at)
    assert cleared.returncode == 0 and "the de note removed from" in cleared.stdout
    latin = tmp_path / "latin.md"
    latin.write_bytes("Grüße".encode("latin-1"))
    for args, stdin, said in (
        ((), "", "give the note's file"),
        (("-", "--clear"), "x", "give the note's file"),
        (("-",), "   \n", "the note is empty"),
        (("-",), "[x](javascript:alert(1))", "http or https addresses only"),
        (("-",), "z" * 20000, f"at most {notes.MAX_NOTE} characters"),
        ((str(latin),), "", "is not UTF-8 text"),
        ((str(tmp_path / "missing.md"),), "", "cannot read"),
        (("-", "--language", "xx-nope"), "x", "--language"),
    ):
        ran = desk.cli("edition", "note", *args, *at, stdin=stdin)
        assert ran.returncode == 2, (args, ran.stdout, ran.stderr)
        assert said in ran.stderr, (args, ran.stderr)
    assert "Traceback" not in ran.stderr


def test_the_archive_page_shows_the_note(newsroom, tmp_path) -> None:
    editors.set_note(newsroom, "weekly", "de", DE_NOTE, BEFORE, ED)
    editors.set_note(newsroom, "weekly", "en", HOSTILE, BEFORE, ED)
    assert sending.send(newsroom, "weekly", ON_TIME).status == "complete"
    for site in serve(newsroom, tmp_path):
        english = site.get(published.edition_path("weekly", "2026-11-23T07:00", "en", "en"))
        german = site.get(published.edition_path("weekly", "2026-11-23T07:00", "de", "en"))
        assert english.status_code == 200 and german.status_code == 200
        assert '<div class="editors-note"><p>Guten Morgen' in german.text and "<em>zählen</em>" in german.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in english.text and "<script>alert" not in english.text
        assert "Guten Morgen" not in english.text
        feed = site.get(published.feed_path("weekly", "de", "json")).json()
        assert feed["items"][0]["content_html"].startswith("<p>Guten Morgen: drei Dinge <em>zählen</em>")


def test_a_test_send_carries_the_note(desk) -> None:
    editors.set_note(desk.runtime, "weekly", "en", EN_NOTE, desk.clock(), ED)
    with desk.client() as client:
        signed_in(client)
        form = Forms(page(client)).form("/editor/upcoming/weekly/test")
        assert client.post("/editor/upcoming/weekly/test", data={"csrf": form["csrf"]}).status_code == 303
    [path] = list(desk.runtime.settings.outbox_dir.glob("*/*.eml"))
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html, text = parts(message)
    assert "<strong>matter</strong>" in html and "three things **matter** today" in text


@pytest.mark.both_databases
def test_two_editors_at_once_leave_one_note_and_its_digests(newsroom) -> None:
    sending.prepare_next(newsroom, "weekly", BEFORE, ahead_ok=True, force=True)
    texts = [f"Note number {n} from an editor." for n in range(4)]
    failed: list[BaseException] = []

    def write(text: str) -> None:
        try:
            editors.set_note(newsroom, "weekly", "en", text, BEFORE, ED)
        except BaseException as exc:  # any failure is the test's
            failed.append(exc)

    writers = [threading.Thread(target=write, args=(text,)) for text in texts]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
    assert not failed
    with newsroom.factory() as session:
        [kept] = session.scalars(select(EditionNote)).all()
        assert session.scalars(select(Edition.status)).all() == [EditionStatus.READY]
    assert kept.text in texts
    for language_texts in variant_texts(newsroom).values():
        assert all(kept.text in text for text in language_texts)  # the digests carry the last one
    assert len([e for e in audit.entries(newsroom, 20) if e.action == "edition note"]) == 4


def test_the_page_says_which_note_each_language_gets(newsroom) -> None:
    with_weekly(newsroom, note="Standing.")
    editors.set_note(newsroom, "weekly", "de", DE_NOTE, BEFORE, ED)
    rows = {row.language: row for row in upcoming.upcoming(newsroom, "weekly", BEFORE).notes}
    assert rows["en"].own is None and rows["en"].standing and rows["en"].shown == "<p>Standing.</p>"
    assert rows["de"].own == DE_NOTE and not rows["de"].standing
    assert rows["de"].shown is not None and "<em>zählen</em>" in rows["de"].shown
