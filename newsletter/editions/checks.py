"""Checks before an edition goes: the pure ones (alt text, size against Gmail's clipping, the
List-Unsubscribe headers, and the verdicts on what links and SpamAssassin answered) and the
checklist they make. A checklist is plain data with a JSON round trip, so the last one is kept
on its edition and shown again without fetching every link anew.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from typing import Any, Literal, cast

from newsletter.editions.compose import CLIP_BYTES
from newsletter.editions.edition import EditionInfo
from newsletter.i18n import N_
from newsletter.store.statuses import EditionStatus
from newsletter.text import printable

# What a detail shows of outside text (an image's address): enough to find it, never a page of it.
SHOWN = 200
# SpamAssassin scores its informational rules (HTML_MESSAGE, ...) 0.001: they say nothing.
INFORMATIONAL = 0.001
Status = Literal["pass", "fail", "skipped"]
TITLES = {
    "links": N_("Article links answer"),
    "images": N_("Images have alt text"),
    "size": N_("Size within Gmail's clipping limit"),
    "spam": N_("SpamAssassin score"),
    "unsubscribe": N_("List-Unsubscribe headers"),
}


@dataclass(frozen=True)
class Check:
    """One line of the checklist: what was checked (`name`, a key of TITLES), how it came out, in
    a sentence, and what failed or was seen, one item per line."""

    name: str
    status: Status
    summary: str
    details: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return TITLES.get(self.name, self.name)


@dataclass(frozen=True)
class Checklist:
    """Every check of one edition, as of `at`."""

    edition: EditionInfo
    checks: list[Check]
    at: datetime

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if check.status == "fail"]

    def to_json(self) -> str:
        edition = self.edition
        return json.dumps(
            {
                "edition": {
                    "id": edition.id,
                    "newsletter": edition.newsletter,
                    "slot": edition.slot,
                    "status": edition.status.value,
                    "window_start": edition.window_start.isoformat(),
                    "window_end": edition.window_end.isoformat(),
                },
                "at": self.at.isoformat(),
                "checks": [
                    {"name": c.name, "status": c.status, "summary": c.summary, "details": c.details}
                    for c in self.checks
                ],
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> Checklist:
        data: dict[str, Any] = json.loads(text)
        edition = data["edition"]
        return cls(
            EditionInfo(
                edition["id"],
                edition["newsletter"],
                edition["slot"],
                EditionStatus(edition["status"]),
                datetime.fromisoformat(edition["window_start"]),
                datetime.fromisoformat(edition["window_end"]),
            ),
            [
                Check(c["name"], cast(Status, c["status"]), c["summary"], list(c["details"]))
                for c in data["checks"]
            ],
            datetime.fromisoformat(data["at"]),
        )


@dataclass(frozen=True)
class Copy:
    """One variant as a reader gets it: a label to name it by, its HTML with a reader's values
    filled in, and its message's headers."""

    label: str
    html: str
    headers: dict[str, str]


@dataclass(frozen=True)
class Answer:
    """How one article link answered: its last HTTP status, and why it is broken when it is."""

    url: str
    status: int | None = None
    problem: str | None = None


@dataclass(frozen=True)
class SpamScore:
    """SpamAssassin's verdict on one variant's message: its score, the score it calls spam, and
    each rule that fired with its points."""

    label: str
    score: float
    required: float
    rules: dict[str, float]


def links(answers: list[Answer]) -> Check:
    """Every article link answers; the broken ones listed with their status or problem."""
    broken = sorted((a for a in answers if a.problem is not None), key=lambda a: a.url)
    if not broken:
        return Check("links", "pass", f"all {len(answers)} article links answer")
    return Check(
        "links",
        "fail",
        f"{len(broken)} of {len(answers)} article links are broken",
        [f"{printable(a.url)[:SHOWN]}: {a.problem}" for a in broken],
    )


class _Images(HTMLParser):
    """The images of a page that carry no alt text and are not marked decorative."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0
        self.missing: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "img":
            return
        self.seen += 1
        values = dict(attrs)
        alt = values.get("alt")
        decorative = alt == "" and (values.get("role") or "").strip().lower() in ("presentation", "none")
        if not (alt or "").strip() and not decorative:
            self.missing.append(printable(values.get("src") or "(no src)")[:SHOWN])


def images(copies: list[Copy], pictured: int = 0) -> Check:
    """Every image has alt text, or is marked decorative (alt="" with role="presentation"): a
    screen reader otherwise reads out the image's address. An edition with no image at all is
    said so (`pictured`: how many of its articles have one, none shown)."""
    seen, details = 0, []
    for copy in copies:
        parser = _Images()
        parser.feed(copy.html)
        parser.close()
        seen += parser.seen
        details += [
            f"{copy.label}: {src} has no alt text and is not marked decorative" for src in parser.missing
        ]
    if not seen:
        why = (
            [
                f"{pictured} of its articles have an image, and no variant shows one (Trending items "
                "show none while the newsletter's trending_images is off)"
            ]
            if pictured
            else []
        )
        return Check("images", "pass", "no image at all: no variant of this edition carries one", why)
    if not details:
        return Check("images", "pass", f"{seen} images, each with alt text or marked decorative")
    return Check(
        "images",
        "fail",
        f'{len(details)} of {seen} images have no alt text (give one, or alt="" role="presentation")',
        details,
    )


def size(copies: list[Copy]) -> Check:
    """Each variant's HTML against Gmail's clipping limit, with the margin left: past it Gmail
    shows "[Message clipped]" and hides the rest, the unsubscribe link with it."""
    limit = CLIP_BYTES / 1024
    sized = sorted(((len(c.html.encode("utf-8")) / 1024, c.label) for c in copies), reverse=True)
    details = [
        f"{label}: {kb:.1f} KB, {limit - kb:.1f} KB left"
        if kb <= limit
        else f"{label}: {kb:.1f} KB, {kb - limit:.1f} KB over"
        for kb, label in sized
    ]
    over = [kb for kb, _label in sized if kb > limit]
    largest = sized[0][0] if sized else 0.0
    if not over:
        return Check(
            "size",
            "pass",
            f"the largest variant is {largest:.1f} KB of {limit:.0f} KB: {limit - largest:.1f} KB left",
            details,
        )
    return Check(
        "size",
        "fail",
        f"{len(over)} of {len(sized)} variants pass Gmail's {limit:.0f} KB: it would clip them and hide "
        "the unsubscribe link (lower per_category or trending)",
        details,
    )


def unsubscribe(copies: list[Copy]) -> Check:
    """List-Unsubscribe with a one-click link over HTTPS and List-Unsubscribe-Post (RFC 8058):
    what Gmail and Yahoo require of bulk senders."""
    details = []
    for copy in copies:
        headers = {name.lower(): value for name, value in copy.headers.items()}
        given = headers.get("list-unsubscribe")
        web = [u for u in re.findall(r"<([^>]*)>", given or "") if u.lower().startswith(("https:", "http:"))]
        if given is None:
            details.append(f"{copy.label}: no List-Unsubscribe header")
        elif not web:
            details.append(f"{copy.label}: List-Unsubscribe has no web link for a one-click unsubscribe")
        elif " ".join((headers.get("list-unsubscribe-post") or "").split()) != "List-Unsubscribe=One-Click":
            details.append(f"{copy.label}: no List-Unsubscribe-Post: List-Unsubscribe=One-Click")
        elif not web[0].lower().startswith("https:"):
            details.append(
                f"{copy.label}: the one-click link {web[0]} is not HTTPS, which Gmail and Yahoo ignore "
                "(public_url)"
            )
    if not details:
        return Check(
            "unsubscribe",
            "pass",
            "List-Unsubscribe and List-Unsubscribe-Post in every variant, one-click over HTTPS",
        )
    return Check("unsubscribe", "fail", f"{len(details)} of {len(copies)} variants fall short", details)


def spam(scores: list[SpamScore], variants: int) -> Check:
    """SpamAssassin's scores: a variant it calls spam fails. Only the largest variants may have
    been scored (each run takes seconds); the summary says so."""
    if not scores:
        return Check("spam", "skipped", "skipped: no variant to score")
    worst = max(scores, key=lambda s: s.score)
    which = f"the {len(scores)} largest of {variants} variants" if len(scores) < variants else "every variant"
    details = []
    for scored in scores:
        fired = sorted(
            ((points, rule) for rule, points in scored.rules.items() if abs(points) > INFORMATIONAL),
            reverse=True,
        )
        rules = ", ".join(f"{rule} {points:+.1f}" for points, rule in fired) or "no rule scored"
        details.append(f"{scored.label}: {scored.score:.1f} ({rules})")
    spammy = any(s.score >= s.required for s in scores)
    summary = f"highest {worst.score:.1f}, spam from {worst.required:.1f} ({which} scored)"
    return Check("spam", "fail" if spammy else "pass", summary, details)
