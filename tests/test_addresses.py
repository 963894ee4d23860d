"""Addresses: one mailbox, one spelling; nothing smtplib would reduce to another mailbox."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.errors import NewsletterError
from newsletter.subscribers.addresses import (
    EnvelopeAddress,
    InvalidAddress,
    envelope_address,
    normalize_email,
)

REFUSED = [
    "re:victim@example.com",  # smtplib's RCPT TO would be victim@example.com
    "fwd:victim@example.com",
    "mailto:victim@example.com",
    "(x)victim@example.com",  # comments
    "victim(x)@example.com",
    "victim@example.com(x)",
    "Victim <victim@example.com>",  # display names
    '"Victim" <victim@example.com>',
    "<victim@example.com>",
    '"victim"@example.com',  # quoted local parts
    '"vic tim"@example.com',
    "@route.example:victim@example.com",  # a source route
    "victim@example.com.",  # trailing dots
    "victim.@example.com",
    "victim@[192.0.2.1]",
    "victim@@example.com",
    "victim@example.com,other@example.com",
    "victim@example.com other@example.com",
    "victim@localhost",
    "victim@example.com\x00",  # NUL, CR and LF inside
    "vic\x00tim@example.com",
    "victim@example.com\r\nBcc: other@example.com",
    "vic\ntim@example.com",
    "victim\r@example.com",
    "a" * 250 + "@example.com",  # over RFC 5321's 254
    "a" * 320 + "@example.com",
    "x" * 1_000_000,
    "",
    "   ",
    "victim",
]


@pytest.mark.parametrize("address", REFUSED)
def test_anything_but_a_bare_mailbox_is_refused_with_a_printable_reason(address: str) -> None:
    with pytest.raises(InvalidAddress) as caught:
        normalize_email(address)
    error = caught.value
    assert isinstance(error, ValueError) and isinstance(error, NewsletterError)
    assert error.address == address and error.reason
    message = str(error)
    assert message.startswith("not an email address: ")
    assert not {"\r", "\n", "\x00"} & set(message) and len(message) < 400


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("victim@example.com", "victim@example.com"),
        ("  Victim@Example.COM ", "victim@example.com"),  # spaces around, uppercase
        ("\tvictim@example.com\t", "victim@example.com"),
        ("VICTIM@EXAMPLE.COM", "victim@example.com"),
        ("first.last+tag@sub.example.com", "first.last+tag@sub.example.com"),
        ("jörg@exämple.de", "jörg@exämple.de"),  # IDN: Unicode in the store
        ("JÖRG@EXÄMPLE.DE", "jörg@exämple.de"),
        ("jörg@xn--exmple-cua.de", "jörg@exämple.de"),  # punycode in, Unicode stored
        ("Pelé@Example.com", "pelé@example.com"),
        ("jo\u0308rg@example.com", "jörg@example.com"),  # decomposed: NFC, so one spelling
    ],
)
def test_one_mailbox_has_one_spelling(typed: str, stored: str) -> None:
    assert normalize_email(typed) == stored


@pytest.mark.parametrize(
    ("stored", "envelope"),
    [
        ("victim@example.com", EnvelopeAddress("victim@example.com", smtputf8=False)),
        ("joerg@exämple.de", EnvelopeAddress("joerg@xn--exmple-cua.de", smtputf8=False)),
        ("jörg@exämple.de", EnvelopeAddress("jörg@xn--exmple-cua.de", smtputf8=True)),
        ("pelé@example.com", EnvelopeAddress("pelé@example.com", smtputf8=True)),
    ],
)
def test_the_envelope_has_an_ascii_domain_and_says_when_smtputf8_is_needed(
    stored: str, envelope: EnvelopeAddress
) -> None:
    assert envelope_address(stored) == envelope


@pytest.mark.parametrize("legacy", ["re:victim@example.com", "Victim@example.com", " victim@example.com"])
def test_a_stored_address_not_in_normalized_form_is_never_sent_to(legacy: str) -> None:
    with pytest.raises(InvalidAddress):
        envelope_address(legacy)


LOCAL = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=20)
DOMAIN = st.sampled_from(["example.com", "EXAMPLE.org", "exämple.de", "xn--exmple-cua.de", "straße.de"])
ADDRESSES = st.one_of(
    st.emails(),
    st.builds(lambda local, domain: f"{local}@{domain}", LOCAL, DOMAIN),
    st.builds(lambda a, mailbox, b: a + mailbox + b, st.text(max_size=4), st.emails(), st.text(max_size=4)),
    st.text(max_size=40),
)


@given(ADDRESSES)
def test_normalizing_is_idempotent_and_yields_one_plain_mailbox(address: str) -> None:
    try:
        stored = normalize_email(address)
    except InvalidAddress:
        return
    assert normalize_email(stored) == stored == stored.lower()
    assert stored.count("@") == 1 and len(stored) <= 254
    assert not {"\r", "\n", "\x00", " ", "<", ">", "(", ")", '"', ","} & set(stored)
    envelope = envelope_address(stored)
    assert envelope.smtputf8 or envelope.address.isascii()
    assert envelope.address.rsplit("@", 1)[1].isascii()


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(
        r"[a-z0-9_+-]{1,8}(\.[a-z0-9_+-]{1,5}){0,2}@[a-z0-9]{1,6}(\.[a-z]{2,4}){1,2}", fullmatch=True
    )
)
def test_the_fast_path_takes_only_addresses_already_normalized(address: str) -> None:
    """A plain address skips email-validator at send time: it must be valid and its own form."""
    assert envelope_address(address).address == normalize_email(address) == address
