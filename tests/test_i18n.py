"""Readers' languages: the catalogs are complete and current, a German reader's email is German
apart from untranslated articles, an English reader's is as before, and a language without a
catalog reads English."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from newsletter import i18n
from newsletter.editions.compose import Card, Composer, DigestView
from newsletter.editions.personalize import Personalizable, Reader
from newsletter.errors import SettingsError
from newsletter.ingest.run import fetch_feeds
from newsletter.settings import NewsletterSettings, Settings, SiteSettings, load_settings
from newsletter.store.db import unit_of_work
from newsletter.subscribers.bulk import import_csv
from tests.conftest import ROOT, SAMPLE, SECTIONS, WEEKLY_NOV_23, ZONE
from tests.support.outbox import messages, send

# English chrome that must not reach a German reader (the articles' own words aside).
ENGLISH = (
    "Hello",
    "Read more",
    "You receive",
    "because you subscribed",
    "Manage preferences",
    "Unsubscribe",
    "Trending",
    "TRENDING",
    "Machine translation",
    "In English",
    "Weekly digest",
    "23 November 2026",
    " comment",
)
GERMAN_PO = ROOT / "newsletter" / "locale" / "de" / "LC_MESSAGES" / "messages.po"


def card(title: str, language: str | None = None, note: str | None = None) -> Card:
    return Card(
        f"https://x.example/{len(title)}",
        title,
        "A. Writer",
        "1. Dezember 2026",
        "Excerpt.",
        None,
        "Europe",
        2,
        note,
        language,
    )


def view(language: str) -> DigestView:
    return DigestView(
        NewsletterSettings(title="Europa kompakt"),
        SiteSettings(),
        language,
        "30. November 2026",
        [card("Kommission legt Haushalt vor")],
        [("Europe", [card("Ein Übersetzter Artikel"), card("An original article", "en", "Auf Englisch")])],
        ["Europe"],
    )


def filled(html_or_text: str, composed, reader: Reader, escape: bool) -> str:
    return Personalizable(html_or_text, escape, composed.markers).fill(reader.values())


def reader(name: str | None, language: str) -> Reader:
    return Reader(name, "https://n.example/unsubscribe/T", "https://n.example/preferences/P", language)


def english_in(text: str) -> list[str]:
    return [phrase for phrase in ENGLISH if phrase in text]


# --- catalogs ------------------------------------------------------------------------------------


def test_the_german_catalog_is_in_the_package_complete_and_well_formed() -> None:
    assert GERMAN_PO.is_file()  # inside newsletter/: the wheel carries it
    with GERMAN_PO.open("rb") as source:
        catalog = read_po(source, locale="de")
    entries = [message for message in catalog if message.id]
    assert entries
    for message in entries:
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings), f"untranslated: {message.id!r}"
        assert not message.fuzzy, f"fuzzy: {message.id!r}"
    problems = [(message.id, errors) for message, errors in catalog.check() if errors]
    assert not problems  # placeholders (%(name)s) match the English ones
    assert i18n.translations("de").gettext("Read more") == "Weiterlesen"


def test_every_catalog_holds_every_message_the_code_and_templates_use() -> None:
    """`make messages` was run: extraction finds nothing a catalog lacks."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    used = {
        message[0] if isinstance(message, tuple) else message
        for _file, _line, message, _comments, _context in extract_from_dir(str(ROOT), method_map, options_map)
    }
    assert {"Hello %(name)s,", "Read more", "Trending", "Weekly digest"} <= used
    for language in i18n.languages():
        with (i18n.CATALOGS / language / "LC_MESSAGES" / "messages.po").open("rb") as source:
            known = {m.id[0] if isinstance(m.id, tuple) else m.id for m in read_po(source) if m.id}
        assert not used - known, f"{language}: run `make messages` and translate {sorted(used - known)}"


def test_languages_fall_back_to_english() -> None:
    assert {"en", "de"} <= set(i18n.languages())
    assert [i18n.catalog_language(tag) for tag in ("de", "DE", "de-AT", "de_CH", "fr", "")] == [
        "de",
        "de",
        "de",
        "de",
        "en",
        "en",
    ]
    assert i18n.gettext_for("fr")("Read more") == "Read more"
    moment = datetime(2026, 11, 23, 0, 30, tzinfo=ZONE)  # still the 22nd in UTC
    assert i18n.format_date(moment, "de", ZONE) == "23. November 2026"
    assert i18n.format_date(moment, "en", ZONE) == "23 November 2026"
    assert i18n.format_date(moment, "fr", ZONE) == "23 November 2026"  # no catalog: English
    assert i18n.format_date(moment, "en") == "23 November 2026"
    assert i18n.language_name("en", "de") == "Englisch"
    assert i18n.language_name("de", "en") == "German"


# --- composing -----------------------------------------------------------------------------------


def test_a_german_variant_is_german_apart_from_its_untranslated_articles() -> None:
    composed = Composer(ROOT / "templates").compose(view("de"))
    html = filled(composed.html, composed, reader("Anna Keller", "de"), True)
    text = filled(composed.text, composed, reader("Anna Keller", "de"), False)
    for body in (html, text):
        assert not english_in(body), english_in(body)
        assert "Hallo Anna Keller," in body and "30. November 2026" in body
        words = re.sub(r"<[^>]+>| \(https://[^)]+\)", "", body)  # the site's link, in either part
        assert (
            "Sie erhalten „Europa kompakt“ von The European Times, weil Sie sich für Europe angemeldet haben."
            in words
        )
    assert '<html lang="de"' in html
    assert "Weiterlesen" in html and "Im Trend" in html and "2 Kommentare" in html
    assert "IM TREND" in text and "Einstellungen ändern: https://n.example/preferences/P" in text
    # the untranslated article says which language it is in; the translated ones need not
    assert re.search(r'<a class="card-title" href="[^"]+" lang="en"[^>]*>An original article</a>', html)
    assert re.search(r'<div class="card-excerpt" lang="en"', html)
    assert html.count('lang="en"') == 2
    assert composed.subject == "Europa kompakt: Kommission legt Haushalt vor und 2 weitere"


def test_variants_of_different_languages_never_share_one() -> None:
    composer = Composer(ROOT / "templates")
    german = composer.compose(view("de"))
    english = composer.compose(view("en"))
    again = composer.compose(view("de"))
    assert "Read more" in english.html and "Weiterlesen" not in english.html
    assert "Weiterlesen" in german.html and "Read more" not in german.html
    assert again.html.replace(again.markers.nonce or "", "") == german.html.replace(
        german.markers.nonce or "", ""
    )
    assert english.subject.endswith("and 2 more")


def test_a_language_without_a_catalog_reads_english() -> None:
    composed = Composer(ROOT / "templates").compose(view("fr"))
    assert '<html lang="en"' in composed.html and "Read more" in composed.html
    assert reader("Ann", "fr").values()["greeting"] == "Hello Ann,"
    assert reader(None, "fr").values()["greeting"] == "Hello,"
    assert reader(None, "de").values()["greeting"] == "Hallo,"
    assert Reader("Ann", "u", "p").values()["greeting"] == "Hello Ann,"  # English unless told


# --- settings ------------------------------------------------------------------------------------


def test_texts_per_language_fall_back_to_the_default() -> None:
    weekly = NewsletterSettings(
        translations={"DE": {"title": "Die Woche"}, "pt-BR": {"subject": "{{ top.title }}"}}
    )
    assert set(weekly.translations) == {"de", "pt"}
    german = weekly.in_language("de")
    assert (german.title, german.subject, german.preheader) == ("Die Woche", weekly.subject, weekly.preheader)
    assert (
        weekly.in_language("pt").subject == "{{ top.title }}"
        and weekly.in_language("pt").title == weekly.title
    )
    assert weekly.in_language("fr") == weekly


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        (
            '[newsletters.weekly.translations.xx-nope]\ntitle = "X"',
            "newsletters.weekly.translations",
            "language code",
        ),
        (
            '[newsletters.weekly.translations.de]\ntitle = "X"\n[newsletters.weekly.translations.de-AT]\ntitle = "Y"',
            "newsletters.weekly.translations",
            "again",
        ),
        (
            '[newsletters.weekly.translations.de]\nsubject = "{{ top.title"',
            "newsletters.weekly.translations.de.subject",
            "not a valid template",
        ),
        (
            '[newsletters.weekly.translations.de]\npreheader = "{{ secret }}"',
            "newsletters.weekly.translations.de.preheader",
            "unknown name 'secret'",
        ),
        (
            '[newsletters.weekly.translations.de]\nsubtitle = "X"',
            "newsletters.weekly.translations.de.subtitle",
            "",
        ),
    ],
)
def test_wrong_texts_per_language_are_refused_when_the_settings_load(tmp_path, table, key, words) -> None:
    path = tmp_path / "newsletter.toml"
    path.write_text(table + "\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(path)
    assert raised.value.key == key and words in str(raised.value)


# --- end to end ----------------------------------------------------------------------------------


def test_a_german_reader_is_sent_a_german_email(newsroom) -> None:
    report = send(newsroom, "weekly", WEEKLY_NOV_23)
    sent = {
        message["To"].addresses[0].addr_spec: message for message in messages(newsroom, report.edition_id)
    }
    anna = sent["anna.keller@example.com"]
    text = anna.get_body(("plain",)).get_content()
    html = anna.get_body(("html",)).get_content()
    assert anna["Subject"].startswith("Wochenüberblick: ")
    for body in (text, html):
        assert not english_in(body), english_in(body)
        assert "Hallo Anna Keller," in body and "Wochenüberblick · 23. November 2026" in body
        assert "Maschinell übersetzt" in body and "Auf Englisch" in body
    assert '<html lang="de"' in html
    # the articles without a translation are marked English; the translated ones are not
    originals = re.findall(r'class="(?:card|trending)-title" href="[^"]+" lang="en"[^>]*>([^<]+)<', html)
    translated = re.findall(
        r'class="(?:card|trending)-title" href="[^"]+/de/[^"]+" style="[^"]*">([^<]+)<', html
    )
    assert originals and translated
    assert "Hoher Vertreter besucht Kyjiw mit neuem Hilfspaket" in translated


def test_an_english_reader_is_sent_the_english_email_as_before(newsroom) -> None:
    report = send(newsroom, "weekly", WEEKLY_NOV_23)
    tom = next(m for m in messages(newsroom, report.edition_id) if "tom" in m["To"])
    text = tom.get_body(("plain",)).get_content()
    html = tom.get_body(("html",)).get_content()
    assert re.match(r"Weekly digest: .+ and \d+ more$", tom["Subject"])
    for body in (text, html):
        assert "Hello Tom O" in body and "Weekly digest · 23 November 2026" in body
        assert "because you subscribed to Politics, Health, Europe." in body
    assert '<html lang="en"' in html and 'lang="en"' not in html.split("<body", 1)[1]
    assert "Read more" in html and "Manage preferences" in html and "TRENDING" in text


def test_texts_per_language_from_the_settings_reach_the_readers(make_runtime) -> None:
    runtime = make_runtime(
        feeds=[
            {"url": str(SAMPLE / "site.xml")},
            {"url": str(SAMPLE / "site-de.xml"), "language": "de"},
        ],
        site={"categories": SECTIONS, "url": "https://www.europeantimes.example"},
        timezone="Europe/Brussels",
        newsletters={
            "weekly": {
                "translations": {
                    "de": {
                        "title": "Die Woche in Europa",
                        "subject": "{{ newsletter.title }} – {{ top.title }}",
                    }
                }
            }
        },
    )
    fetch_feeds(runtime.settings, runtime.factory)
    with unit_of_work(runtime.factory) as session:
        import_csv(session, runtime.settings, ROOT / "subscribers" / "demo-subscribers.csv", confirmed=True)
    report = send(runtime, "weekly", WEEKLY_NOV_23)
    sent = {message["To"].addresses[0].addr_spec: message for message in messages(runtime, report.edition_id)}
    anna, tom = sent["anna.keller@example.com"], sent["tom.obrien@example.ie"]
    assert anna["Subject"].startswith("Die Woche in Europa – ")
    assert "„Die Woche in Europa“" in anna.get_body(("plain",)).get_content()
    assert tom["Subject"].startswith("Weekly digest: ")  # English: the default
    assert Settings(newsletters={"weekly": {}}).newsletter("weekly").translations == {}
