"""Settings: defaults < TOML file < NEWSLETTER_* environment variables.

Secrets come from the environment only; a secret in the TOML file is refused so it never
lands in a repository. Nothing here runs at import time: entry points call `load_settings`.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import ipaddress
import logging
import os
import re
import tomllib
import zoneinfo
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_origin

from babel import Locale, UnknownLocaleError
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as EnvironmentValueError

from newsletter import i18n
from newsletter.errors import SettingsError
from newsletter.i18n import N_
from newsletter.paths import home_folder, sqlite_under, template_folders, under
from newsletter.text import slugify

log = logging.getLogger("newsletter.settings")

# The settings file when none is named, under the home folder.
DEFAULT_CONFIG = Path("config/newsletter.toml")
# Settings that are paths: in a file they are relative to the file, elsewhere to `home`.
PATH_KEYS = ("outbox_dir", "smtp_ca_file", "templates_dir", "home", "bounce_maildir")
SECRET_KEYS = ("smtp_password", "sendgrid_api_key", "secret_key", "bounce_imap_password", "metrics_token")
# What the subject and preheader templates may name (newsletter/editions/compose.py passes them).
TEMPLATE_NAMES = frozenset({"newsletter", "top", "count", "and_more", "headlines", "site"})
# A key spelled only from these words (any case, repeated or joined, with separators and short
# numbers) means "somebody copied the example": refused unless the demo flag is on.
_PLACEHOLDER_WORD = re.compile(
    r"(?:change|me|my|your|the|secret|secrets|password|passwd|pass|passphrase|example|sample|test"
    r"|testing|demo|only|default|dummy|placeholder|insert|replace|with|put|goes|here|todo|fixme|key"
    r"|keys|token|signing|super|dev|local|x)+"
)
SECRET_MIN_LENGTH = 16
MAKE_A_KEY = (
    "make one with `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'` and keep it "
    "(changing it voids every link already mailed)"
)
# NEWSLETTER_* variables that are not settings but are read by the program (config_path).
MAKE_A_TOKEN = "make one with `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
_NOT_SETTINGS = frozenset({"config"})
SECRET_MIN_DISTINCT = 8  # different letters and digits: refuses 'aaaa…', 'abab…', '1234-1234-…'


DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LANGUAGE_HELP = "not a known language code (use one like 'en', 'de' or 'pt-BR')"


def language_code(tag: str) -> str:
    """A language tag ('de', 'pt-BR', 'pt_BR') as the store keeps languages: its primary subtag,
    lower case, as feeds' languages are read (ingest/parse.py); ValueError if Babel knows none."""
    code = i18n.primary_language(tag)
    if not re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]+)*", i18n.language_tag(tag)) or not _known_language(code):
        raise ValueError(LANGUAGE_HELP)
    return code


@lru_cache(maxsize=512)
def _known_language(code: str) -> bool:
    # 'und' (undetermined) parses as Babel's likeliest guess, English: it names no language.
    try:
        return code != "und" and Locale.parse(code) is not None
    except (UnknownLocaleError, ValueError):
        return False


def placeholder_secret(value: str) -> str | None:
    """Why a signing key looks copied or made up rather than random, or None if it does not."""
    words = re.findall(r"[a-z]+|[0-9]+", value.lower())
    if all(_PLACEHOLDER_WORD.fullmatch(word) or (word.isdigit() and len(word) <= 4) for word in words):
        return "a placeholder (such as 'change-me' or 'your-secret-key'), not a random key"
    if len(value) < SECRET_MIN_LENGTH:
        return f"shorter than {SECRET_MIN_LENGTH} characters"
    if len(set(re.sub(r"[\W_]", "", value))) < SECRET_MIN_DISTINCT or re.fullmatch(r"(.+?)\1+", value):
        return f"too uniform: under {SECRET_MIN_DISTINCT} different letters and digits, or one run repeated"
    return None


def weekdays(spec: str) -> frozenset[int]:
    """'mon', 'mon,thu', 'mon-fri' or '*' as weekday numbers (Monday = 0); ValueError if bad."""
    spec = spec.strip().lower()
    if spec == "*":
        return frozenset(range(7))
    found: set[int] = set()
    for part in spec.split(","):
        ends = part.strip().split("-")
        if len(ends) > 2 or any(end not in DAY_NAMES for end in ends):
            raise ValueError(f"use day names like 'mon', 'mon,thu', 'mon-fri' or '*': {spec!r}")
        first, last = DAY_NAMES.index(ends[0]), DAY_NAMES.index(ends[-1])
        found.update(range(first, last + 1) if first <= last else [*range(first, 7), *range(last + 1)])
    return frozenset(found)


class Strict(BaseModel):
    """A settings group: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")


class SiteSettings(Strict):
    name: str = "The European Times"
    url: HttpUrl = HttpUrl("https://www.europeantimes.news")
    language: str = "en"
    from_name: str = "The European Times"
    from_address: str = "newsletter@example.com"
    reply_to: str = "editors@example.com"
    postal_address: str = "Example Street 1, 1000 Brussels, Belgium"
    # The mailto: in List-Unsubscribe, beside the one-click link; default: reply_to.
    unsubscribe_mailto: str | None = None
    # The site's sections; feed <category> terms matching none of these are tags.
    # Empty means every term is taken as a category.
    categories: list[str] = Field(default_factory=list)
    # The languages readers may choose and the archive publishes, besides `language`; None: every
    # language a feed or a newsletter's translations are in (`Settings.languages`).
    languages: list[str] | None = None
    # A section's name per reader's language, by section (its slug or its name):
    # [site.category_names.de] politics = "Politik". Else a language feed's `category_name`.
    category_names: dict[str, dict[str, str]] = Field(default_factory=dict)

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        return language_code(value)

    @field_validator("languages")
    @classmethod
    def _languages(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else list(dict.fromkeys(_language_named(tag) for tag in values))

    @field_validator("category_names")
    @classmethod
    def _category_names(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {}
        for tag, names in value.items():
            code = _language_named(tag)
            if code in found:
                raise ValueError(f"{tag!r} is the language {code!r} again")
            for section, name in names.items():
                if not name.strip():
                    raise ValueError(f"{tag}.{section}: a section's name cannot be empty")
            found[code] = {section: name.strip() for section, name in names.items()}
        return found

    @field_validator("from_address", "reply_to", "unsubscribe_mailto")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", value):
            raise ValueError(f"not an email address: {value!r}")
        return value


class FetchSettings(Strict):
    timeout_seconds: float = Field(20.0, gt=0)
    max_bytes: int = Field(20_000_000, gt=0)
    max_redirects: int = Field(5, ge=0)
    # Feeds (and redirects) to loopback, private or link-local addresses are refused unless on.
    allow_private: bool = False
    user_agent: str = "newsletter/0.1 (+https://github.com/newsletter; feed reader)"


class FeedSettings(Strict):
    url: str
    category: str | None = None
    category_name: str | None = None
    language: str | None = None
    trending: bool = False

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a feed needs a url or a file path")
        if re.match(r"^[a-z][a-z0-9+.-]*://", value, re.I) and not value.lower().startswith(
            ("http://", "https://", "file://")
        ):
            raise ValueError(f"only http(s) URLs and file paths are feeds: {value!r}")
        return value

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        return language_code(value) if value is not None else None

    @property
    def is_remote(self) -> bool:
        return self.url.lower().startswith(("http://", "https://"))


def _language_named(tag: str) -> str:
    """A language tag from a list or a table key as the store keeps it; the error names it."""
    try:
        return language_code(tag)
    except ValueError:
        raise ValueError(f"{tag!r} is {LANGUAGE_HELP}") from None


class NewsletterTexts(Strict):
    """A newsletter's words for readers of one language; what is not given is the default's."""

    title: str | None = None
    subject: str | None = None
    preheader: str | None = None
    # The standing editor's note for readers of this language (see NewsletterSettings.note).
    note: str | None = None

    @field_validator("subject", "preheader")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None:
            check_template(value)
        return value

    @field_validator("note")
    @classmethod
    def _note(cls, value: str | None) -> str | None:
        return check_note(value)


class NewsletterSettings(Strict):
    """One newsletter (weekly, daily, ...): when it goes out and what a digest holds."""

    title: str = N_("Weekly digest")
    # Days it goes out, as cron day-of-week names: "mon", "mon,thu", "mon-fri" or "*".
    days: str = "mon"
    at: str = "07:00"  # local time, in `timezone`
    # The first edition looks back this far; later ones take everything since the last. Unset:
    # as far as the schedule leaves between two of its slots (7 days for a weekly, 1 for a daily).
    first_window_days: int | None = Field(None, ge=1, le=366)
    per_category: int = Field(5, ge=1, le=50)
    trending: int = Field(5, ge=0, le=50)
    # Trending items show their article's image above the title, as the sections' cards do.
    # On by default: an article goes to Trending instead of its section, so its image would
    # otherwise reach nobody, and editors expect the photo of the most read story to show.
    # False: Trending is a compact list of titles, without images.
    trending_images: bool = True
    subject: str = "{{ newsletter.title }}: {{ top.title }}{% if count > 1 %} {{ and_more }}{% endif %}"
    preheader: str = "{{ headlines | join(' · ') }}"
    # "auto": an edition goes at its slot unless an editor holds it; "required": only once an
    # editor approves it (`newsletter edition approve`).
    approval: Literal["auto", "required"] = "auto"
    # Each sent edition gets a public page under /archive/ and entries in the feeds.
    archive: bool = True
    # True: an edition just prepared is held until its checks (`newsletter check`) pass; one that
    # fails stays held, the operators are told, and an editor releases it.
    hold_on_failed_checks: bool = False
    # Minutes before its slot the edition is composed (its window closes then) and the editors
    # are mailed a link to review it; 0: composed at the slot. Keep it well under the time
    # between two slots.
    review_minutes: int = Field(0, ge=0, le=7 * 24 * 60)
    # True: each reader gets the edition at `at` in their own time zone, on their own date for
    # `days`; composed once, `review_minutes` before the earliest reader's hour, sent in waves.
    local_time: bool = False
    # The standing editor's note, in the site's language: a few lines of Markdown (paragraphs,
    # emphasis, http(s) links) after the greeting, in every edition without a note of its own
    # (`newsletter edition note`); `translations.LANG.note` for readers of another language.
    note: str | None = None
    # Per reader's language ("de"): its own title, subject, preheader or note, else the ones above.
    translations: dict[str, NewsletterTexts] = Field(default_factory=dict)
    # "digest": editions on a schedule; "alert": one article at a time, sent at once (`newsletter
    # alert`, or a feed storing it in `trigger_categories`), to the readers who opted in.
    kind: Literal["digest", "alert"] = "digest"
    # Alerts only: at most this many reach a reader per day (the site's day); none: no limit.
    max_per_day: int | None = Field(None, ge=1, le=100)
    # Alerts only: "22:00-07:00" in the site's zone holds an alert until they end, unless urgent.
    quiet_hours: str | None = None
    # Alerts only: an article a fetch stores for the first time in one of these categories (a
    # feed category or WordPress tag, by name or slug) is alerted, unless older than the age.
    trigger_categories: list[str] = Field(default_factory=list)
    trigger_max_age_minutes: int = Field(60, ge=1, le=7 * 24 * 60)

    @field_validator("subject", "preheader")
    @classmethod
    def _template(cls, value: str) -> str:
        check_template(value)
        return value

    @field_validator("note")
    @classmethod
    def _note(cls, value: str | None) -> str | None:
        return check_note(value)

    def standing_notes(self, site_language: str) -> dict[str, str]:
        """The standing notes by language: `note` is the site language's unless its own
        translation gives one."""
        found = {code: texts.note for code, texts in self.translations.items() if texts.note}
        if self.note and site_language not in found:
            found[site_language] = self.note
        return found

    @field_validator("translations")
    @classmethod
    def _languages(cls, value: dict[str, NewsletterTexts]) -> dict[str, NewsletterTexts]:
        found: dict[str, NewsletterTexts] = {}
        for tag, texts in value.items():
            try:
                code = language_code(tag)
            except ValueError:
                raise ValueError(f"{tag!r} is {LANGUAGE_HELP}") from None
            if code in found:
                raise ValueError(f"{tag!r} is the language {code!r} again")
            found[code] = texts
        return found

    def in_language(self, language: str) -> NewsletterSettings:
        """This newsletter as readers of `language` get it: that language's title, subject and
        preheader where the settings give them."""
        texts = self.translations.get(language)
        if texts is None:
            return self
        given = texts.model_dump(exclude_none=True, exclude={"note"})  # a note: `standing_notes`
        return self.model_copy(update=given) if given else self

    @field_validator("days")
    @classmethod
    def _days(cls, value: str) -> str:
        weekdays(value)
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str | None) -> str | None:
        clock = r"([01]\d|2[0-3]):[0-5]\d"
        if value is not None and not re.fullmatch(f"{clock}-{clock}", value):
            raise ValueError(f"use HH:MM-HH:MM, 24-hour, in the site's zone (like '22:00-07:00'): {value!r}")
        if value is not None and value[:5] == value[6:]:
            raise ValueError(f"the quiet hours {value!r} start and end at once")
        return value

    @model_validator(mode="after")
    def _kind_options(self) -> NewsletterSettings:
        """An option of the other kind is refused, named, rather than silently ignored."""
        # Given and not the default: a dumped and reloaded settings object passes (tests, reloads).
        given = {
            name
            for name in self.model_fields_set
            if getattr(self, name) != type(self).model_fields[name].get_default(call_default_factory=True)
        }
        if self.kind == "alert" and "title" not in self.model_fields_set:
            self.title = N_("Breaking news")
        if self.kind == "alert":
            wrong = sorted(given & DIGEST_ONLY)
            wrong += [
                f"translations.{code}.{key}"
                for code, texts in self.translations.items()
                for key in ("subject", "preheader", "note")
                if getattr(texts, key) is not None
            ]
            if wrong:
                raise ValueError(
                    f"{', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} for digests only: an alert "
                    "newsletter sends one article when an editor or a feed says so (remove the line)"
                )
        else:
            wrong = sorted(given & ALERT_ONLY)
            if wrong:
                raise ValueError(
                    f"{', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} for alert newsletters "
                    'only: add kind = "alert" or remove the line'
                )
        return self

    @property
    def is_alert(self) -> bool:
        return self.kind == "alert"

    @field_validator("at")
    @classmethod
    def _at(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError(f"use HH:MM, 24-hour: {value!r}")
        return value


def check_note(source: str | None) -> str | None:
    """A standing note as an edition's is checked (newsletter/notes.py); blank: none."""
    if source is None:
        return None
    from newsletter.notes import NoteProblem, cleaned  # Markdown only where a note is set

    try:
        return cleaned(source)
    except NoteProblem as exc:
        raise ValueError(str(exc)) from None


# Options that mean something to one kind of newsletter only (see `NewsletterSettings.kind`).
DIGEST_ONLY = frozenset(
    {
        "days",
        "at",
        "first_window_days",
        "per_category",
        "trending",
        "trending_images",
        "subject",
        "preheader",
        "approval",
        "hold_on_failed_checks",
        "review_minutes",
        "local_time",
        "note",
    }
)
ALERT_ONLY = frozenset({"max_per_day", "quiet_hours", "trigger_categories", "trigger_max_age_minutes"})


def check_template(source: str) -> None:
    """Refuse a subject or preheader template when the settings load rather than at send time:
    bad syntax, a filter or test Jinja lacks (even in a branch not taken), an unknown name, or an
    attribute the sandbox would refuse."""
    environment = SandboxedEnvironment()
    try:
        tree = environment.parse(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"not a valid template: {exc.message} (line {exc.lineno})") from None
    for kind, word, known in (
        (nodes.Filter, "filter", environment.filters),
        (nodes.Test, "test", environment.tests),
    ):
        for node in tree.find_all(kind):
            if node.name not in known:
                raise ValueError(f"no {word} named {node.name!r} in the template")
    unknown = meta.find_undeclared_variables(tree) - TEMPLATE_NAMES - environment.globals.keys()
    if unknown:
        raise ValueError(
            f"unknown name {min(unknown)!r} in the template (use {', '.join(sorted(TEMPLATE_NAMES))})"
        )
    reached = [
        *(node.attr for node in tree.find_all(nodes.Getattr)),
        *(node.arg.value for node in tree.find_all(nodes.Getitem) if isinstance(node.arg, nodes.Const)),
        *(
            node.args[0].value
            for node in tree.find_all(nodes.Filter)
            if node.name == "attr" and node.args and isinstance(node.args[0], nodes.Const)
        ),
    ]
    for name in reached:
        if isinstance(name, str) and not environment.is_safe_attribute(None, name, None):
            raise ValueError(f"the template may not reach the attribute {name!r}")


def _default_newsletters() -> dict[str, NewsletterSettings]:
    return {
        "weekly": NewsletterSettings(),
        "daily": NewsletterSettings(
            title=N_("Daily briefing"),
            days="*",
            at="06:30",
            per_category=3,
            trending=3,
        ),
    }


class RankingSettings(Strict):
    """Weights of the trending signals; a weight of 0 turns a signal off."""

    trending_weight: float = Field(3.0, ge=0)
    comments_weight: float = Field(1.0, ge=0)
    clicks_weight: float = Field(1.5, ge=0)
    recency_weight: float = Field(2.0, ge=0)
    half_life_hours: float = Field(48.0, gt=0)


class LinkSettings(Strict):
    """UTM parameters added to article links; empty values are left out."""

    utm_source: str = "newsletter"
    utm_medium: str = "email"
    # {newsletter} and {slot} are filled in per edition.
    utm_campaign: str = "{newsletter}-{slot}"
    # Article links go through the web app (`/c/...`), which counts one click per reader,
    # edition and article for the trending ranking, then redirects to the article. Off: links
    # go straight to the site and nothing is counted.
    track_clicks: bool = False


class SendingSettings(Strict):
    """How hard the sender pushes and how patiently it retries."""

    rate: float | None = Field(None, gt=0)  # messages per second at most; None: as fast as it can
    # SMTP connections kept busy at once, one message in flight on each: a relay answering each
    # command in tens of milliseconds takes about 15 messages a second per connection. Stay
    # under the relay's limit of connections per client (see the README's "Sending").
    smtp_connections: int = Field(4, ge=1, le=100)
    sendgrid_batch: int = Field(1000, ge=1, le=1000)  # personalizations per request (API max 1000)
    # Provider requests (SendGrid) a sender keeps in flight at once: one at a time caps a sender
    # at sendgrid_batch readers per round trip (4,000 a second at 250 ms).
    concurrency: int = Field(8, ge=1, le=16)
    timeout_seconds: float = Field(30.0, gt=0)  # per SMTP command or API request
    max_retries: int = Field(8, ge=0)  # a busy provider is retried this often before the send stops
    # A reader's mailbox refusing for now (SMTP 45x) is tried this often in all, then failed;
    # the first wait before trying again, doubling each time (at most an hour).
    max_attempts: int = Field(5, ge=1, le=100)
    retry_delay_seconds: float = Field(30.0, gt=0, le=3600)
    max_backoff_seconds: float = Field(60.0, gt=0)
    # A sender silent this long (its heartbeat speaks four times a lease) is taken for dead: any
    # live sender or scheduler takes its batch over (what it handed over becomes uncertain).
    lease_minutes: float = Field(1.0, gt=0)
    # When the store cannot be written during a send, nothing more goes, and the store is tried
    # again with backoff this long before the send stops with one line naming it.
    store_retry_seconds: float = Field(60.0, ge=0, le=3600)
    # The bounce address: each SMTP delivery's envelope sender is it tagged with the delivery's
    # signed id (bounces+ID@…), read back by `newsletter bounces`; none: the From address.
    return_path: str | None = None
    # Soft bounces (4.x.x) in a row, with no delivery between them, that end a reader's mail.
    soft_bounce_limit: int = Field(3, ge=1, le=100)
    # This product's unsubscribe address: the List-Unsubscribe mailto becomes
    # unsubscribe+TOKEN@…, honoured by `newsletter bounces`; none: site.unsubscribe_mailto.
    unsubscribe_address: str | None = None
    # A delivery whose request was in flight when its sender died is uncertain. With the
    # provider's event webhook, an event settles it; without one within this time, it is sent
    # again (SendGrid retries a webhook that was down for 24 hours: wait longer than that).
    uncertain_minutes: float = Field(1470.0, gt=0)
    # Without a webhook nothing can settle it: "hold" keeps it uncertain until
    # `newsletter send --resend-uncertain` (nobody gets two, somebody may get none until then);
    # "resend" sends it again at once (nobody is missed, somebody may get two).
    in_flight: Literal["hold", "resend"] = "hold"
    # A provider's signed event POST older or newer than this is refused (a replay).
    webhook_tolerance_minutes: float = Field(10.0, gt=0, le=60)
    # Blocked, deferred or dropped-for-content events in one POST past this are a provider
    # problem the operators are told of.
    provider_problem_events: int = Field(50, ge=1)

    @field_validator("return_path", "unsubscribe_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"[A-Za-z0-9._=-]{1,30}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", value):
            raise ValueError(
                f"use a plain ASCII address with a short local part (at most 30 characters), "
                f"room for the tag within 64: {value!r}"
            )
        return value


class ReadersSettings(Strict):
    """The readers' pages (`newsletter serve`): sign-up, preferences, unsubscribing."""

    # What a reader agrees to when signing up; recorded with their consent.
    consent_wording: str = N_(
        "I agree to receive the newsletters I chose by email. Every email has a link to change "
        "what I receive or to unsubscribe at once."
    )
    # Origins (scheme://host[:port]) whose pages may carry a sign-up form posting here without
    # the CSRF cookie: the double opt-in protects them. Any other cross-origin POST is refused.
    signup_origins: list[str] = Field(default_factory=list)
    # Reverse proxies whose X-Forwarded-For is believed (IP addresses or networks); the client is
    # the connection's address otherwise.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Sign-ups and link requests a client may make per minute (an address is sent a confirmation
    # or a fresh link at most once an hour, whatever is asked).
    client_per_minute: int = Field(10, ge=1)

    @field_validator("signup_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"https?://[^/\s?#]+", value):
                raise ValueError(f"an origin is scheme://host[:port], nothing after: {value!r}")
        return [value.lower() for value in values]

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, values: list[str]) -> list[str]:
        for value in values:
            ipaddress.ip_network(value, strict=False)  # ValueError names the bad one
        return values


class EditorsSettings(Strict):
    """The editors' pages under `/editor/`: how long a session lasts unused, and how many
    sign-in attempts an account and a client get per quarter hour."""

    # A session unused this long is over; the editor signs in again.
    idle_minutes: float = Field(60.0, gt=0, le=7 * 24 * 60)
    # Sign-in attempts per 15 minutes, right or wrong: a run of guessed passwords is refused.
    attempts_per_account: int = Field(5, ge=1)
    attempts_per_client: int = Field(20, ge=1)


class WebSettings(Strict):
    """What one connection may ask of the server (`newsletter serve`, `run --with-web`): a slow
    or oversized request loses its connection, the others are served."""

    # The request line and headers: at most this many bytes and header lines, all in this long.
    header_bytes: int = Field(16 * 1024, ge=1024, le=1024 * 1024)
    header_count: int = Field(100, ge=10, le=1000)
    header_seconds: float = Field(10.0, gt=0, le=300)
    # A body gets this long, plus a second for every `body_min_rate` bytes that arrive: a client
    # sending slower than that is cut off (answered 408), whatever the body's size.
    body_seconds: float = Field(10.0, gt=0, le=300)
    body_min_rate: int = Field(500, ge=1)
    # And no body, however steady, is read for longer than this (the largest, an 8 MB batch of
    # SendGrid events, takes about a minute at 1 Mbit/s).
    body_max_seconds: float = Field(120.0, gt=0, le=3600)
    # Connections open at once, idle ones included; past it a request is answered 503 at once.
    max_connections: int = Field(1000, ge=10)
    # An idle kept-alive connection is closed after this long.
    keep_alive_seconds: int = Field(5, ge=1, le=300)


class MetricsSettings(Strict):
    """`/metrics` for Prometheus: who may read it without the bearer token
    (NEWSLETTER_METRICS_TOKEN), and where `newsletter run` without the web answers it."""

    # Client addresses or networks that may read /metrics without the token; the client is the
    # one `[readers] trusted_proxies` resolve, and a request a proxy forwarded from elsewhere is
    # never taken for a local one.
    allow: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    # `newsletter run` (without --with-web) answers /metrics on this port when set; 0: any free one.
    port: int | None = Field(None, ge=0, le=65535)
    host: str = "127.0.0.1"  # where that port listens: loopback unless Prometheus runs elsewhere

    @field_validator("allow")
    @classmethod
    def _allow(cls, values: list[str]) -> list[str]:
        for value in values:
            ipaddress.ip_network(value, strict=False)  # ValueError names the bad one
        return values


class SyndicationSettings(Strict):
    """The public archive and its feeds: how many editions a page and a feed hold, and the
    WebSub hubs told of each new edition."""

    # Editions per archive index page, and entries per feed (the newest).
    per_page: int = Field(20, ge=1, le=200)
    feed_entries: int = Field(20, ge=1, le=200)
    # WebSub hubs told (hub.mode=publish) which feeds changed when an edition is archived.
    hubs: list[HttpUrl] = Field(default_factory=list)


class SchedulerSettings(Strict):
    """`newsletter run`: how often feeds refresh, how late a slot may still go out, when the
    operators hear of trouble, how long delivery rows are kept."""

    refresh_minutes: float = Field(15.0, ge=1, le=1440)
    # A slot's edition still goes out this long after its time (the scheduler was down); later,
    # the slot is recorded as missed and its articles go with the next edition.
    misfire_grace_minutes: float = Field(60.0, ge=0, le=7 * 24 * 60)
    # Where alerts go (an edition partial or missed, a feed failing, credentials refused);
    # none: logged only.
    alerts_to: str | None = None
    feed_alert_hours: float = Field(6.0, gt=0)
    # Delivery rows of editions older than this are pruned (their counts kept on the edition).
    retention_days: int = Field(180, ge=1)
    maintenance_at: str = "03:30"  # local time of the daily maintenance job

    @field_validator("maintenance_at")
    @classmethod
    def _at(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError(f"use HH:MM, 24-hour: {value!r}")
        return value

    @field_validator("alerts_to")
    @classmethod
    def _alerts_to(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", value):
            raise ValueError(f"not an email address: {value!r}")
        return value


class Settings(BaseSettings):
    """Every setting; each top-level key is also the environment variable NEWSLETTER_<KEY>."""

    model_config = SettingsConfigDict(env_prefix="NEWSLETTER_", env_nested_delimiter="__", extra="forbid")

    # The base of relative paths that come from the defaults or the environment (absolute).
    home: Path | None = None
    database_url: str = "sqlite:///subscribers/newsletter.db"
    provider: Literal["outbox", "smtp", "sendgrid"] = "outbox"
    outbox_dir: Path = Path("outbox")
    smtp_host: str = "localhost"
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["none", "starttls", "ssl"] = "starttls"
    # A CA bundle to trust as well as the system's, for a server with a private certificate.
    smtp_ca_file: Path | None = None
    sendgrid_api_key: SecretStr | None = None
    # The bounce mailbox `newsletter bounces` reads: a Maildir folder, or IMAP over TLS.
    bounce_maildir: Path | None = None
    bounce_imap_host: str | None = None
    bounce_imap_port: int = Field(993, ge=1, le=65535)
    bounce_imap_user: str | None = None
    bounce_imap_password: SecretStr | None = None
    bounce_imap_folder: str = "INBOX"
    sendgrid_host: HttpUrl = HttpUrl("https://api.sendgrid.com")
    # The Event Webhook's verification key, base64 as SendGrid's settings page shows it; the
    # webhook (`/webhooks/sendgrid`) is off without it.
    sendgrid_webhook_public_key: str | None = None
    public_url: HttpUrl = HttpUrl("http://localhost:8000")
    secret_key: SecretStr | None = None
    timezone: str = "UTC"
    # Allows placeholder secrets; set only by the bundled demo configuration.
    demo: bool = False
    site: SiteSettings = Field(default_factory=SiteSettings)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    feeds: list[FeedSettings] = Field(default_factory=list)
    newsletters: dict[str, NewsletterSettings] = Field(default_factory=_default_newsletters)
    ranking: RankingSettings = Field(default_factory=RankingSettings)
    links: LinkSettings = Field(default_factory=LinkSettings)
    sending: SendingSettings = Field(default_factory=SendingSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    readers: ReadersSettings = Field(default_factory=ReadersSettings)
    editors: EditorsSettings = Field(default_factory=EditorsSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    syndication: SyndicationSettings = Field(default_factory=SyndicationSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    # The bearer token that opens /metrics from any address (Prometheus's `authorization`).
    metrics_token: SecretStr | None = None
    # The editors' templates; default: templates/ under home, else the copy installed with the package.
    templates_dir: Path | None = None

    @field_validator("sendgrid_webhook_public_key")
    @classmethod
    def _public_key(cls, value: str | None) -> str | None:
        """Checked at start, not at the first event: base64 DER of an ECDSA key, as SendGrid shows it."""
        if not value:
            return None
        try:
            key = load_der_public_key(base64.b64decode(value.strip(), validate=True))
        except (ValueError, TypeError, binascii.Error):
            key = None
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError(
                "not an ECDSA public key in base64 (copy it from SendGrid's Event Webhook settings)"
            )
        return value.strip()

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zones = {zone.lower(): zone for zone in zoneinfo.available_timezones()}
            # A city alone ('Chicago', 'new york') names its zone as well as a near miss does.
            cities = {zone.rsplit("/", 1)[-1]: zone for zone in sorted(zones, reverse=True) if "/" in zone}
            city = value.strip().lower().replace(" ", "_")
            guess = (
                [cities[city]] if city in cities else difflib.get_close_matches(value.lower(), zones, 1, 0.75)
            )
            hint = (
                f"did you mean {zones[guess[0]]!r}?" if guess else "use an IANA name like 'Europe/Brussels'"
            )
            raise ValueError(f"unknown time zone {value!r}: {hint}") from None
        return value

    @field_validator("home")
    @classmethod
    def _home(cls, value: Path | None) -> Path | None:
        return home_folder(value) if value is not None else None

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("use sqlite:///PATH or postgresql://USER@HOST/DB")
        return value

    @field_validator("newsletters")
    @classmethod
    def _newsletter_names(cls, value: dict[str, NewsletterSettings]) -> dict[str, NewsletterSettings]:
        """A name a CSV cell, a link and `--newsletters` can all spell: lists split on , ; |."""
        for name in value:
            held = next((mark for mark in ",;|" if mark in name), None)
            if held is None and name == name.strip() and name:
                continue
            problem = (
                f"holds {held!r}" if held else "is empty" if not name.strip() else "has spaces around it"
            )
            raise ValueError(
                f"the name {name!r} {problem}: a newsletter's name is a word like weekly "
                "(it is used in CSV cells, links and --newsletters)"
            )
        return value

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _no_token(cls, value: object) -> object:
        """An empty NEWSLETTER_METRICS_TOKEN is no token."""
        return None if value == "" else value

    @model_validator(mode="after")
    def _metrics_token(self) -> Settings:
        """A token anyone could guess opens the metrics to anyone: refused as a key would be."""
        if self.metrics_token is not None and not self.demo:
            problem = placeholder_secret(self.metrics_token.get_secret_value())
            if problem:
                raise SettingsError("metrics_token", f"NEWSLETTER_METRICS_TOKEN is {problem}; {MAKE_A_TOKEN}")
        return self

    @model_validator(mode="after")
    def _provider_needs(self) -> Settings:
        if self.provider == "sendgrid" and self.sendgrid_api_key is None:
            raise ValueError("provider sendgrid needs NEWSLETTER_SENDGRID_API_KEY")
        return self

    @model_validator(mode="after")
    def _site_languages(self) -> Settings:
        """Every language of `[site] languages` and `[site.category_names]` is one readers get
        something in; every section named there is one of the site's."""
        usable = {self.site.language, *i18n.languages(), *self._content_languages()}
        for code in self.site.languages or []:
            if code not in usable:
                raise SettingsError(
                    "site.languages",
                    f"{code!r} has no catalog (newsletter/locale), no feed and no newsletter "
                    "translation: its readers would get nothing in it",
                )
        offered = self.languages()
        sections = self._section_slugs()
        for code, names in self.site.category_names.items():
            if code not in offered:
                raise SettingsError(
                    f"site.category_names.{code}",
                    f"{code!r} is not among the site's languages ({', '.join(offered)})",
                )
            for section in names:
                if sections and slugify(section) not in sections:
                    raise SettingsError(
                        f"site.category_names.{code}.{section}",
                        f"no section {section!r} (the site's: {', '.join(sorted(sections))})",
                    )
        return self

    def _content_languages(self) -> set[str]:
        """The languages a feed or a newsletter's own words are in."""
        return {
            *(feed.language for feed in self.feeds if feed.language),
            *(code for newsletter in self.newsletters.values() for code in newsletter.translations),
        }

    def _section_slugs(self) -> set[str]:
        """The sections the settings name (as newsletter.store.categories.configured_sections)."""
        return {slugify(name) for name in self.site.categories} | {
            slugify(feed.category) for feed in self.feeds if feed.category
        }

    def languages(self) -> list[str]:
        """The languages readers are offered and the archive publishes, the site's first:
        `[site] languages`, else every language a feed or a newsletter's words are in."""
        site = self.site.language
        chosen = self.site.languages if self.site.languages is not None else self._content_languages()
        return [site, *sorted(set(chosen) - {site})]

    def reader_language(self, language: str | None) -> str:
        """The language a reader of `language` gets emails and pages in: theirs when the site
        offers it, else the site's (a reader kept from before the site dropped a language)."""
        code = i18n.primary_language(language or "")
        return code if code in self.languages() else self.site.language

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first: it overrides the file, which load_settings passes as init values.
        return (env_settings, init_settings)

    def signing_key(self) -> bytes:
        """The key for unsubscribe and preference tokens; refuses a missing or placeholder one."""
        if self.secret_key is None:
            raise SettingsError("secret_key", f"NEWSLETTER_SECRET_KEY is not set; {MAKE_A_KEY}")
        value = self.secret_key.get_secret_value()
        if not self.demo and (problem := placeholder_secret(value)):
            raise SettingsError("secret_key", f"NEWSLETTER_SECRET_KEY is {problem}; {MAKE_A_KEY}")
        return value.encode()

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def digests(self) -> list[str]:
        """The newsletters sent on a schedule, sorted: the ones with slots and editions to plan."""
        return sorted(name for name, config in self.newsletters.items() if not config.is_alert)

    def alerts(self) -> list[str]:
        """The alert newsletters, sorted."""
        return sorted(name for name, config in self.newsletters.items() if config.is_alert)

    def newsletter(self, name: str) -> NewsletterSettings:
        if name not in self.newsletters:
            known = ", ".join(sorted(self.newsletters)) or "none"
            raise SettingsError("newsletters", f"no newsletter {name!r} (configured: {known})")
        return self.newsletters[name]

    def home_folder(self) -> Path:
        """The base of relative paths from outside a settings file (see `newsletter.paths`)."""
        return home_folder(self.home)

    def resolved(self) -> Settings:
        """These settings with every relative path made absolute against the home folder."""
        home = self.home_folder()
        feeds = [
            feed
            if feed.is_remote or feed.url.startswith("file://")
            else feed.model_copy(update={"url": str(under(home, Path(feed.url)))})
            for feed in self.feeds
        ]
        return self.model_copy(
            update={
                "home": home,
                "database_url": sqlite_under(home, self.database_url),
                "outbox_dir": under(home, self.outbox_dir),
                "smtp_ca_file": under(home, self.smtp_ca_file) if self.smtp_ca_file else None,
                "templates_dir": under(home, self.templates_dir) if self.templates_dir else None,
                "bounce_maildir": under(home, self.bounce_maildir) if self.bounce_maildir else None,
                "feeds": feeds,
            }
        )

    def database_label(self) -> str:
        """The store's URL fit to print or log: a password in it is masked."""
        return masked(self.database_url)

    def templates_path(self) -> Path:
        """`templates_dir`, else the first of `newsletter.paths.template_folders` that exists."""
        if self.templates_dir:
            return under(self.home_folder(), self.templates_dir)
        folders = template_folders(self.home_folder())
        found = next((folder for folder in folders if (folder / "email").is_dir()), None)
        if found is None:
            raise SettingsError("templates_dir", f"no templates in {', '.join(map(str, folders))}")
        return found


# The user part's password runs to the LAST @ of the URL: one may hold @ / ? # unencoded, and
# masking too much is harmless, too little is not.
_PASSWORD = re.compile(r"^(?P<user>[a-z][a-z0-9+.-]*://[^/?#@:]*):(?P<secret>.*)@(?=[^@]*$)", re.I | re.S)
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&][^=&#]*password[^=&#]*=)(?P<secret>[^&#]*)", re.I)


def masked(url: str) -> str:
    """A URL with its password, if any, replaced by ***: in the user part, however it is spelt,
    and in the query (`?password=`, `sslpassword=`); never raises, even on a malformed URL."""
    return _QUERY_PASSWORD.sub(r"\g<key>***", _PASSWORD.sub(r"\g<user>:***@", url))


def url_secrets(url: str) -> list[str]:
    """The passwords a URL holds, and the pieces of one split at its @ (a driver that parsed it
    otherwise may echo a piece as a host name): what must never be printed."""
    found = [m["secret"] for m in _QUERY_PASSWORD.finditer(url)]
    if user := _PASSWORD.match(url):
        found += [user["secret"], *user["secret"].split("@")]
    return sorted({secret for secret in found if len(secret) >= 3}, key=len, reverse=True)


def plain_http(settings: Settings) -> str | None:
    """The warning a send gives, and its dry run and `status` show, when readers' links are not
    HTTPS."""
    if settings.public_url.scheme == "https" or settings.demo:
        return None
    return (
        f"public_url {settings.public_url} is not HTTPS: Gmail and Yahoo ignore a one-click unsubscribe "
        "link that is not HTTPS, and readers' mail may land in spam; set public_url to the site's "
        "https:// address"
    )


def config_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """The TOML file in use: NEWSLETTER_CONFIG, else config/newsletter.toml under the home
    folder (NEWSLETTER_HOME or the default) when present."""
    environ = os.environ if environ is None else environ
    named = environ.get("NEWSLETTER_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise SettingsError("NEWSLETTER_CONFIG", f"no such file: {path}")
        return path
    try:
        home = home_folder(environ.get("NEWSLETTER_HOME"))
    except ValueError as exc:
        raise SettingsError("home", str(exc)) from None
    path = home / DEFAULT_CONFIG
    return path if path.is_file() else None


def read_toml(path: Path) -> dict[str, Any]:
    """Read the file, refuse secrets in it, and make its relative paths relative to its folder."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(str(path), f"not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(str(path), f"not UTF-8 text (byte {exc.start} cannot be read)") from None
    except OSError as exc:
        raise SettingsError(str(path), f"cannot read: {exc.strerror}") from None
    refuse_secrets(data)
    for key in data:
        # pydantic-settings matches names in any case; paths below are made relative by their name.
        if key != key.lower():
            raise SettingsError(key, f"setting names are lower case: {key.lower()}")
    folder = Path(os.path.abspath(path)).parent  # a linked file's paths follow the link
    feeds = data.get("feeds")
    for feed in feeds if isinstance(feeds, list) else []:
        url = feed.get("url") if isinstance(feed, dict) else None
        if isinstance(url, str) and "://" not in url and not Path(url).is_absolute():
            feed["url"] = str(under(folder, Path(url)))
    for key in PATH_KEYS:
        if isinstance(data.get(key), str):
            data[key] = str(under(folder, Path(data[key])))
    if isinstance(data.get("database_url"), str):
        data["database_url"] = sqlite_under(folder, data["database_url"])
    return data


def refuse_secrets(data: object, where: str = "") -> None:
    """A secret anywhere in the file, in any case or table, is refused: it would end up in a repository."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        name = f"{where}{key}"
        if isinstance(key, str) and key.lower() in SECRET_KEYS:
            raise SettingsError(name, f"secrets come from the environment only: set NEWSLETTER_{key.upper()}")
        refuse_secrets(value, f"{name}.")


def load_settings(path: Path | None = None) -> Settings:
    """Build settings once, at an entry point, every path absolute; errors become one
    SettingsError line."""
    path = path if path is not None else config_path()
    data = read_toml(path) if path else {}
    ignored = check_environment(os.environ)
    try:
        settings = Settings(**data).resolved()
    except EnvironmentValueError as exc:  # a NEWSLETTER_<TABLE> variable that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        key = field.group(1) if field else "environment"
        raise SettingsError(key, f"NEWSLETTER_{key.upper()} is not valid JSON: {exc.__cause__}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "settings"
        # pydantic's own words ("Value error, ") say nothing to an operator.
        message = re.sub(r"^(Value error|Assertion failed), ", "", first["msg"])
        secret = any(part in SECRET_KEYS for part in first["loc"])
        if not secret and first.get("input") is not None and first["type"] != "extra_forbidden":
            shown = first["input"]
            if isinstance(shown, str):
                shown = masked(shown)
            if not isinstance(shown, dict | list) and repr(shown) not in message:
                message += f" (got {shown!r})"
        if first["type"] == "extra_forbidden":
            message = "unknown setting" + _did_you_mean(first["loc"])
        message += _which_feed(first["loc"], data)
        more = len(exc.errors()) - 1
        if more:
            message += f" (and {more} more)"
        raise SettingsError(key, message) from None
    from newsletter import logs  # where the settings are read: their zone times the log from here

    logs.in_zone(settings.zone)
    for variable in ignored:
        log.warning("%s is not a setting and is ignored (settings: README, Configuration)", variable)
    return settings


def _which_feed(where: tuple[int | str, ...], data: Mapping[str, Any]) -> str:
    """`feeds.1.x` counts from 0: the feed is named by its URL too, as its table says it."""
    feeds = data.get("feeds")
    if len(where) < 2 or where[0] != "feeds" or not isinstance(where[1], int) or not isinstance(feeds, list):
        return ""
    feed = feeds[where[1]] if where[1] < len(feeds) else None
    url = feed.get("url") if isinstance(feed, dict) else None
    return f" (the [[feeds]] table of {masked(url)})" if isinstance(url, str) else ""


def check_environment(environ: Mapping[str, str]) -> list[str]:
    """A NEWSLETTER_* variable that is not a setting would be ignored without a word: one that
    looks like a misspelt setting, at the top or inside a table, is refused with its likely
    name; the others are returned, to be warned about."""
    ignored = []
    for variable in sorted(environ):
        prefix, _, name = variable.partition("_")
        if prefix.upper() != "NEWSLETTER" or name.lower() in _NOT_SETTINGS:
            continue
        parts = tuple(name.lower().split("__"))
        found = _unknown(parts)
        if found is None:
            continue
        at, keys = found
        # At the top, only a near miss is refused: NEWSLETTER_PORT may be a deployment's own.
        guess = _closest(parts[at], keys, 0.6 if at else 0.75)
        if guess:
            meant = "__".join((*parts[:at], guess, *parts[at + 1 :])).upper()
            raise SettingsError(variable, f"no such setting; did you mean NEWSLETTER_{meant}?")
        if at:  # inside a table: the model refuses it anyway, named as the variable here
            raise SettingsError(variable, f"no such setting in [{'.'.join(parts[:at])}]")
        ignored.append(variable)
    return ignored


def _unknown(parts: tuple[str, ...]) -> tuple[int, list[str]] | None:
    """Where a dotted key leaves the settings (its index and the keys there were), or None."""
    model: Any = Settings
    at = 0
    while at < len(parts):
        fields = getattr(model, "model_fields", None)
        if fields is None:
            return None  # a table of free keys (translations, category names): anything goes
        field = fields.get(parts[at])
        if field is None:
            return at, list(fields)
        model = _model_in(field.annotation)
        if model is None:
            return None  # a value
        at += 2 if get_origin(field.annotation) in (dict, list) else 1  # a newsletter's name, a feed's index
    return None


# Words people reach for that the settings spell otherwise.
_MEANT = {"time": "at", "hour": "at", "when": "at", "day": "days", "weekdays": "days", "lang": "language"}


def _closest(key: str, keys: list[str], cutoff: float = 0.6) -> str | None:
    """The key probably meant by an unknown one, among those of its table."""
    if _MEANT.get(key) in keys:
        return _MEANT[key]
    guess = difflib.get_close_matches(key, keys, n=1, cutoff=cutoff)
    return guess[0] if guess else None


def _did_you_mean(where: tuple[int | str, ...]) -> str:
    """The closest key to an unknown one, from the table it was found in."""
    model: Any = Settings
    for part in where[:-1]:
        field = (
            model.model_fields.get(part) if isinstance(part, str) and hasattr(model, "model_fields") else None
        )
        if field is None:
            continue  # a list index or a newsletter's name: the same model below it
        model = _model_in(field.annotation)
    guess = _closest(str(where[-1]), list(getattr(model, "model_fields", {})))
    return f"; did you mean {guess!r}?" if guess else ""


def _model_in(annotation: Any) -> Any:
    """The settings model a field holds, directly or in a list or dict (`feeds`, `newsletters`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _model_in(argument)
        if found is not None:
            return found
    return None
