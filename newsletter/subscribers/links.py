"""A reader's signed links (unsubscribe, preferences), built in one place for every message,
preview and page that shows them."""

from __future__ import annotations

import time
from collections.abc import Callable

from newsletter.settings import Settings
from newsletter.subscribers.tokens import DAY, Signer, seal, sign


class Links:
    """URLs under the public URL carrying a token signed for one subscriber and one purpose.

    Without a key (a preview before NEWSLETTER_SECRET_KEY is set) the token is an obvious dummy.
    """

    def __init__(self, public_url: str, key: bytes | None) -> None:
        self.base = public_url.rstrip("/")
        self.key = key
        self.signers: dict[tuple[str, str], Signer] = {}  # today's, per purpose and scope

    @classmethod
    def from_settings(cls, settings: Settings) -> Links:
        """Refuses a missing or placeholder key: a real message never carries a dummy link."""
        return cls(str(settings.public_url), settings.signing_key())

    def _url(self, purpose: str, subscriber_id: int, scope: str = "") -> str:
        token = "PREVIEW" if self.key is None else self._signer(purpose, scope)(subscriber_id)
        return f"{self.base}/{purpose}/{token}"

    def urls(self, purpose: str, scope: str = "") -> Callable[[int], str]:
        """`_url` for many readers (a send makes two links for each): today's signer, set up
        once with the URL it completes, not per link."""
        prefix = f"{self.base}/{purpose}/"
        if self.key is None:
            return lambda _subscriber_id: f"{prefix}PREVIEW"
        return Signer(self.key, purpose, scope, prefix=prefix)  # today's

    def _signer(self, purpose: str, scope: str) -> Signer:
        """Today's signer for a purpose and scope: a send signs two links per reader."""
        assert self.key is not None
        signer = self.signers.get((purpose, scope))
        if signer is None or signer.day != int(time.time() // DAY):
            signer = self.signers[(purpose, scope)] = Signer(self.key, purpose, scope)
        return signer

    def unsubscribe(self, subscriber_id: int, newsletter: str) -> str:
        """One-click unsubscribe from this newsletter (RFC 8058); never expires."""
        return self._url("unsubscribe", subscriber_id, newsletter)

    def preferences(self, subscriber_id: int) -> str:
        return self._url("preferences", subscriber_id)

    def confirm(self, subscriber_id: int, request: str = "") -> str:
        """The double opt-in: an unconfirmed reader gets no digest until this is followed; it
        names the sign-up (its consent record) whose choices apply only then, and carries
        nothing a reader of the link could read."""
        return self._url("confirm", subscriber_id, request)

    def address(self, subscriber_id: int, new_email: str) -> str:
        """Confirms a new address, sent to that address; the address travels sealed."""
        if self.key is None:
            return self._url("address", subscriber_id)
        # Signed alone, not through the cached signers: every sealed scope is different.
        token = sign(self.key, "address", subscriber_id, scope=seal(self.key, "address", new_email))
        return f"{self.base}/address/{token}"


def token_of(url: str) -> str:
    """The token a link made here carries: its last path segment (`…/unsubscribe/TOKEN`)."""
    return url.rstrip("/").rsplit("/", 1)[-1]


class ClickLinks:
    """Tracked article links, `/c/ARTICLE/READER`: the first part signs an article of an edition
    when the variant is composed, so the redirect can lead nowhere else (no open redirect); the
    second signs the reader, filled in per reader, so a click counts once for them."""

    def __init__(self, public_url: str, key: bytes) -> None:
        self.base = public_url.rstrip("/")
        self.key = key

    def url(self, edition_id: int, article_id: int, reader: str) -> str:
        article = sign(self.key, "article", article_id, scope=str(edition_id))
        return f"{self.base}/c/{article}/{reader}"

    def reader(self, subscriber_id: int, edition_id: int) -> str:
        return sign(self.key, "click", subscriber_id, scope=str(edition_id))

    def readers(self, edition_id: int) -> Signer:
        """`reader` for many readers of an edition: the key and scope set up once."""
        return Signer(self.key, "click", str(edition_id))
