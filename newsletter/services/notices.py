"""The emails a reader's own action sends (a confirmation link, a fresh preferences link, a new
address to confirm): outside the ledger, in the reader's language, from `templates/notices/`."""

from __future__ import annotations

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from newsletter.editions.compose import Markers
from newsletter.i18n import N_, install, translations
from newsletter.sending.providers import OutcomeStatus
from newsletter.sending.single import send_one
from newsletter.settings import Settings
from newsletter.store.runtime import Runtime

# The notices there are, each a `<kind>.txt` and `<kind>.html` and a subject.
SUBJECTS = {
    "confirm": N_("Confirm your subscription to {site}"),
    "already": N_("Your subscription to {site}"),
    "preferences": N_("Your link to {site}'s newsletter settings"),
    "address": N_("Confirm your new address for {site}"),
}


def environment(settings: Settings) -> SandboxedEnvironment:
    """Templates an editor may change: sandboxed, autoescaped in HTML."""
    loader = jinja2.FileSystemLoader(str(settings.templates_path() / "notices"))
    return SandboxedEnvironment(
        loader=loader,
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
    )


def send_notice(
    runtime: Runtime, kind: str, to: str, language: str, link: str, newsletters: list[str]
) -> OutcomeStatus:
    """Render and send one notice; what the provider made of it. A notice that cannot go is
    logged by the caller's page as sent all the same: the page never tells who is on the list."""
    settings = runtime.settings
    env = environment(settings)
    install(env, language)
    gettext = translations(language).gettext
    titles = [
        gettext(settings.newsletter(name).in_language(language).title)
        for name in newsletters
        if name in settings.newsletters
    ]
    values = {"site": settings.site, "link": link, "newsletters": titles, "language": language}
    subject = gettext(SUBJECTS[kind]).format(site=settings.site.name)
    _address, outcome = send_one(
        settings,
        to,
        subject,
        env.get_template(f"{kind}.html").render(values, subject=subject),
        env.get_template(f"{kind}.txt").render(values, subject=subject),
        Markers.fresh(),
        f"{settings.site.name} subscriptions",
        "subscriptions",
        {"Auto-Submitted": "auto-generated"},
        list_headers=False,
    )
    return outcome.status
