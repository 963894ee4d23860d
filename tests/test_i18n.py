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
from newsletter.store.categories import configured_sections, localized, section_names
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


# --- the languages a site has --------------------------------------------------------------------


def test_the_site_offers_its_language_and_those_of_its_feeds_unless_it_lists_them() -> None:
    english = Settings(feeds=[{"url": "https://x.example/feed"}])
    assert english.languages() == ["en"]  # a German catalog alone offers nothing
    assert english.reader_language("de") == "en" and english.reader_language(None) == "en"
    edition = Settings(
        feeds=[{"url": "https://x.example/feed"}, {"url": "https://x.example/de", "language": "de"}]
    )
    assert edition.languages() == ["en", "de"] and edition.reader_language("de-AT") == "de"
    words = Settings(newsletters={"weekly": {"translations": {"pt": {"title": "Resumo semanal"}}}})
    assert words.languages() == ["en", "pt"]  # the newsletter's own words in it
    assert Settings(site={"languages": ["DE", "de"]}).languages() == ["en", "de"]  # a catalog suffices
    assert Settings(site={"languages": []}, feeds=edition.feeds).languages() == ["en"]
    assert Settings(site={"language": "de", "languages": ["en"]}).languages() == ["de", "en"]


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ('[site]\nlanguages = ["xx-nope"]', "site.languages", "language code"),
        ('[site]\nlanguages = ["fr"]', "site.languages", "'fr' has no catalog"),
        ('[site.category_names.xx-nope]\npolitics = "X"', "site.category_names", "language code"),
        ('[site.category_names.de]\npolitics = "Politik"', "site.category_names.de", "not among"),
        (
            '[site]\nlanguages = ["de"]\ncategories = ["Politics"]\n[site.category_names.de]\nsport = "Sport"',
            "site.category_names.de.sport",
            "no section 'sport'",
        ),
        (
            '[site]\nlanguages = ["de"]\n[site.category_names.de]\npolitics = " "',
            "site.category_names",
            "empty",
        ),
    ],
)
def test_wrong_languages_and_section_names_are_refused_when_the_settings_load(
    tmp_path, table, key, words
) -> None:
    path = tmp_path / "newsletter.toml"
    path.write_text(table + "\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(path)
    assert raised.value.key == key and words in str(raised.value), str(raised.value)
    assert "\n" not in str(raised.value)


def test_section_names_come_from_the_settings_and_a_language_editions_feed(tmp_path) -> None:
    path = tmp_path / "newsletter.toml"
    path.write_text(
        '[site]\ncategories = ["Politics", "Human Rights"]\n'
        '[site.category_names.de]\npolitics = "Politik"\n"Human Rights" = "Menschenrechte"\n'
        '[[feeds]]\nurl = "https://x.example/de/health"\nlanguage = "de"\ncategory = "health"\n'
        'category_name = "Gesundheit"\n'
    )
    settings = load_settings(path)
    assert section_names(settings, "de") == {
        "politics": "Politik",
        "human-rights": "Menschenrechte",
        "health": "Gesundheit",
    }
    # the German feed's name is not the site's: the section is "Health" in English
    assert configured_sections(settings)["health"] == "Health"
    names = localized(settings, configured_sections(settings), "de", "de")
    assert (names["politics"], names["politics"].language) == ("Politik", None)
    assert (names["health"], names["health"].language) == ("Gesundheit", None)
    english = localized(settings, configured_sections(settings), "en", "en")
    assert [(str(n), n.language) for n in english.values()] == [
        ("Politics", None),
        ("Human Rights", None),
        ("Health", None),
    ]


def newsroom_runtime(make_runtime, **site: object):
    """The sample site, its readers imported: the German edition's feed unless told otherwise."""
    feeds = [{"url": str(SAMPLE / "site.xml")}, {"url": str(SAMPLE / "trending.xml"), "trending": True}]
    if site.pop("german_feed", True):
        feeds.append({"url": str(SAMPLE / "site-de.xml"), "language": "de"})
    runtime = make_runtime(
        feeds=feeds,
        site={"categories": SECTIONS, "url": "https://www.europeantimes.example", **site},
        timezone="Europe/Brussels",
        newsletters={"weekly": {}},
    )
    fetch_feeds(runtime.settings, runtime.factory)
    with unit_of_work(runtime.factory) as session:
        import_csv(session, runtime.settings, ROOT / "subscribers" / "demo-subscribers.csv", confirmed=True)
    return runtime


def sent_to(runtime) -> dict[str, object]:
    report = send(runtime, "weekly", WEEKLY_NOV_23)
    return {m["To"].addresses[0].addr_spec: m for m in messages(runtime, report.edition_id)}


def test_a_german_reader_of_an_english_only_site_gets_the_english_email(make_runtime) -> None:
    runtime = newsroom_runtime(make_runtime, german_feed=False)
    sent = sent_to(runtime)
    anna, tom = sent["anna.keller@example.com"], sent["tom.obrien@example.ie"]
    html = anna.get_body(("html",)).get_content()
    assert '<html lang="en"' in html and "Hello Anna Keller," in html and "Read more" in html
    assert "Weiterlesen" not in html and "Wochenüberblick" not in html
    assert "/archive/weekly/" in html and "/in/de" not in html and "/feeds/weekly/de" not in html
    assert anna["Subject"].startswith("Weekly digest: ")
    assert tom["Subject"].startswith("Weekly digest: ")


def test_section_names_in_the_readers_language_or_marked_as_english(make_runtime) -> None:
    runtime = newsroom_runtime(make_runtime, category_names={"de": {"politics": "Politik"}})
    sent = sent_to(runtime)
    anna = sent["anna.keller@example.com"]  # Politics and Europe, in German
    html = anna.get_body(("html",)).get_content()
    text = anna.get_body(("plain",)).get_content()
    headings = dict(
        (name, attributes)
        for attributes, name in re.findall(r'<h2 class="section-title"([^>]*)>([^<]+)</h2>', html)
    )
    assert set(headings) == {"Im Trend", "Politik", "Europe"}
    assert 'lang="en"' not in headings["Politik"] and 'lang="en"' in headings["Europe"]
    assert "POLITIK" in text and "POLITICS" not in text
    words = re.sub(r"<(?!/?span)[^>]+>", "", html)
    assert 'weil Sie sich für Politik, <span lang="en">Europe</span> angemeldet haben.' in words
    # a trending article's section is named the same way
    named = re.findall(r'<span( lang="en")?>([^<]+)</span> · ', html)
    assert named and all((mark == "") == (name == "Politik") for mark, name in named), named
    tom = sent["tom.obrien@example.ie"].get_body(("html",)).get_content()
    assert "Politik" not in tom and 'lang="en"' not in tom.split("<body", 1)[1]


def test_a_reader_of_every_section_is_not_read_the_whole_list(make_runtime) -> None:
    runtime = newsroom_runtime(make_runtime)
    sent = sent_to(runtime)
    klaus = sent["klaus.weber@example.de"].get_body(("plain",)).get_content()  # German, no choice
    jan = sent["jan.novak@example.com"].get_body(("plain",)).get_content()  # English, no choice
    assert "weil Sie sich dafür angemeldet haben." in klaus and "Human Rights" not in klaus.split("--")[-1]
    assert "You receive “Weekly digest” from The European Times (" in jan
    assert "because you subscribed." in jan and "subscribed to" not in jan


def test_emails_have_headings_and_each_read_more_names_its_article(make_runtime) -> None:
    runtime = newsroom_runtime(make_runtime)
    for message in sent_to(runtime).values():
        html = message.get_body(("html",)).get_content()
        sections = re.findall(r'<td class="section-heading"[^>]*>(.*?)</td>', html)
        assert sections and all(
            re.fullmatch(r'<h2 class="section-title"[^>]*>[^<]+</h2>', s) for s in sections
        )
        # styled as before: no margin of the client's own, the section's size and colour
        assert re.search(r'<h2 class="section-title"[^>]* style="[^"]*margin:0[^"]*font-size:13px', html)
        cards = re.findall(
            r'<h3 class="card-heading"[^>]*><a class="card-title" href="([^"]+)"[^>]*>([^<]+)</a></h3>', html
        )
        trending = re.findall(r'<h3 class="trending-heading"[^>]*><a class="trending-title"', html)
        assert cards and trending
        labels = re.findall(r'<a class="read-more" href="([^"]+)" aria-label="([^"]+)"', html)
        assert len(labels) == len(cards)
        german = 'lang="de"' in html.split(">", 2)[1]
        for (href, title), (link, label) in zip(cards, labels, strict=True):
            assert link == href and label == ("Weiterlesen: " if german else "Read more: ") + title
