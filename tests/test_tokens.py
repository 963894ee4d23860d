"""Signed tokens: whatever arrives in a link is a valid subscriber id or a TokenError, nothing else."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from newsletter.subscribers.links import ClickLinks, Links
from newsletter.subscribers.tokens import DAY, Signed, Signer, TokenError, read, sign, verify

KEY = b"test-secret-key-0123456789"
NOW = 20_000 * DAY + 3600.0


def test_a_genuine_token_names_its_subscriber_for_its_purpose_only() -> None:
    token = sign(KEY, "preferences", 42, now=NOW)
    assert verify(KEY, "preferences", token, now=NOW + 399 * DAY) == 42
    with pytest.raises(TokenError, match="expired"):
        verify(KEY, "preferences", token, now=NOW + 401 * DAY)
    for key, purpose in ((KEY, "unsubscribe"), (b"another-key-0123456789", "preferences")):
        with pytest.raises(TokenError, match="not valid"):
            verify(key, purpose, token, now=NOW)


def test_an_unsubscribe_link_never_expires_and_names_its_newsletter() -> None:
    token = sign(KEY, "unsubscribe", 42, now=NOW, scope="weekly")
    assert read(KEY, "unsubscribe", token, now=NOW + 20 * 365 * DAY) == Signed(42, "weekly")
    _payload, mac = token.split(".")
    other = sign(KEY, "unsubscribe", 42, now=NOW, scope="daily").split(".")[0]
    with pytest.raises(TokenError, match="not valid"):  # another newsletter's scope with this MAC
        read(KEY, "unsubscribe", f"{other}.{mac}", now=NOW)


GENUINE = sign(KEY, "unsubscribe", 42, now=NOW)
PAYLOAD, MAC = GENUINE.split(".")


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "-.",
        PAYLOAD,
        PAYLOAD + ".",
        "." + MAC,
        f"{PAYLOAD}.{MAC[:-1]}é",  # non-ASCII MAC: compare_digest raised TypeError
        f"{PAYLOAD}.{'é' * len(MAC)}",
        f"2a.{MAC}",  # no day
        f"2a-.{MAC}",
        f"-4e20.{MAC}",
        f"xyz-4e20.{MAC}",  # bad hex
        f"2a-4e2g.{MAC}",
        f"-2a-4e20.{MAC}",  # negative
        f"2a--4e20.{MAC}",
        f"{'f' * 40}-4e20.{MAC}",  # huge
        f"2a-{'f' * 40}.{MAC}",
        f"{PAYLOAD}.{MAC}.{MAC}",
        f" {GENUINE}",
        f"{GENUINE}\n",
        f"{PAYLOAD}.{MAC}=",
        "a" * 100_000,  # very long
        f"{'1' * 5000}-4e20.{MAC}",
        "\x00" * 10,
        "🙂.🙂",
    ],
)
def test_a_malformed_token_is_a_token_error(token: str) -> None:
    with pytest.raises(TokenError):
        verify(KEY, "unsubscribe", token, now=NOW)


@pytest.mark.parametrize("subscriber_id", [-1, 2**64, 10**30])
def test_a_signed_id_out_of_range_never_verifies(subscriber_id: int) -> None:
    """Even with a correct MAC, the numbers must be what `sign` makes for real subscribers."""
    with pytest.raises(TokenError):
        verify(KEY, "unsubscribe", sign(KEY, "unsubscribe", subscriber_id, now=NOW), now=NOW)


@given(st.text() | st.text(alphabet="0123456789abcdef-._ABCDEFXYZ=é", max_size=60))
@example(f"{PAYLOAD}.{MAC[:-1]}é")
@example(GENUINE)
def test_verify_on_any_text_is_an_id_or_a_token_error(token: str) -> None:
    try:
        result = verify(KEY, "unsubscribe", token, now=NOW)
    except TokenError:
        return
    assert token == GENUINE and result == 42


@given(st.integers(min_value=0, max_value=2**63 - 1), st.floats(min_value=0, max_value=4e9))
def test_every_signed_id_verifies(subscriber_id: int, now: float) -> None:
    assert verify(KEY, "confirm", sign(KEY, "confirm", subscriber_id, now=now), now=now) == subscriber_id


@pytest.mark.parametrize("token", [None, b"1-2.abc", 12, ["1-2.abc"]])
def test_a_token_that_is_not_text_is_a_token_error(token) -> None:
    """A web form or a JSON body may hand over anything."""
    with pytest.raises(TokenError):
        verify(KEY, "unsubscribe", token)


@given(
    key=st.binary(min_size=1, max_size=200),  # keys longer than SHA-256's block are hashed first
    subscriber_id=st.integers(0, 2**64 - 1),
    scope=st.text(max_size=30),
)
def test_a_signer_for_many_readers_makes_the_tokens_sign_makes(
    key: bytes, subscriber_id: int, scope: str
) -> None:
    assert Signer(key, "click", scope, NOW)(subscriber_id) == sign(key, "click", subscriber_id, NOW, scope)


def test_links_made_for_many_readers_are_the_links_made_one_at_a_time() -> None:
    links, clicks = Links("https://n.example/", KEY), ClickLinks("https://n.example/", KEY)
    for subscriber_id in (1, 77, 2**40):
        assert links.urls("unsubscribe", "weekly")(subscriber_id) == links.unsubscribe(
            subscriber_id, "weekly"
        )
        assert links.urls("preferences")(subscriber_id) == links.preferences(subscriber_id)
        assert clicks.readers(12)(subscriber_id) == clicks.reader(subscriber_id, 12)
    assert Links("https://n.example", None).urls("preferences")(5) == "https://n.example/preferences/PREVIEW"
