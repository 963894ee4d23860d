"""Addresses that name what they answer: VERP return paths and tagged unsubscribe addresses.

With `sending.return_path` set (`bounces@news.example`), each delivery's envelope sender is
`bounces+TOKEN@news.example`, the token its delivery id signed with the secret key: a bounce
finds its delivery even when it says nothing useful, and a forged one finds none. The
List-Unsubscribe mailto is tagged the same way (`unsubscribe+TOKEN@…`, see `messages.Mailto`).
"""

from __future__ import annotations

from newsletter.subscribers.tokens import read_address_token, sign_for_address

BOUNCE = "bounce"  # the tokens' purpose: a bounce token is good for nothing else
MAX_LOCAL_PART = 64  # octets, RFC 5321 4.5.3.1.1


def with_tag(base: str, tag: str) -> str:
    """`local+tag@domain` for `base` = `local@domain`."""
    local, _, domain = base.rpartition("@")
    return f"{local}+{tag}@{domain}"


def tag_of(base: str, address: str) -> str | None:
    """The tag of `address` when it is `base` with one (`local+TAG@domain`), as written (a token
    may be case-sensitive); the base is compared ignoring case, as mail systems do."""
    local, _, domain = base.rpartition("@")
    found_local, _, found_domain = address.strip().strip("<>").rpartition("@")
    prefix = f"{local}+"
    if found_domain.lower() != domain.lower() or not found_local.lower().startswith(prefix.lower()):
        return None
    return found_local[len(prefix) :] or None


def envelope_sender(return_path: str, key: bytes | None, delivery_id: int) -> str:
    """The MAIL FROM of one message: the return path tagged with its delivery's signed id, or
    the plain return path for a message outside the ledger (id 0: test sends, notices)."""
    if key is None or delivery_id <= 0:
        return return_path
    return with_tag(return_path, sign_for_address(key, BOUNCE, delivery_id))


def bounced_delivery(key: bytes, return_path: str, address: str) -> int | None:
    """The delivery a bounce sent to `address` is about; None when the address is not a tagged
    return path; TokenError when it is one but forged or damaged."""
    tag = tag_of(return_path, address)
    return None if tag is None else read_address_token(key, BOUNCE, tag)
