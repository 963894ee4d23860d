"""A reader's signed links (unsubscribe, preferences), built in one place for every message,
preview and page that shows them."""

from __future__ import annotations

from newsletter.settings import Settings
from newsletter.subscribers.tokens import sign


class Links:
    """URLs under the public URL carrying a token signed for one subscriber and one purpose.

    Without a key (a preview before NEWSLETTER_SECRET_KEY is set) the token is an obvious dummy.
    """

    def __init__(self, public_url: str, key: bytes | None) -> None:
        self.base = public_url.rstrip("/")
        self.key = key

    @classmethod
    def from_settings(cls, settings: Settings) -> Links:
        """Refuses a missing or placeholder key: a real message never carries a dummy link."""
        return cls(str(settings.public_url), settings.signing_key())

    def _url(self, purpose: str, subscriber_id: int) -> str:
        token = "PREVIEW" if self.key is None else sign(self.key, purpose, subscriber_id)
        return f"{self.base}/{purpose}/{token}"

    def unsubscribe(self, subscriber_id: int) -> str:
        return self._url("unsubscribe", subscriber_id)

    def preferences(self, subscriber_id: int) -> str:
        return self._url("preferences", subscriber_id)
