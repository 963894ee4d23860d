"""Editors' passwords: which are refused, and their Argon2 hashes (pwdlib).

An editor's account can send an edition to every reader, so a password must resist guessing
offline too, should the store's hashes leak: long, not a well-known one, not the address."""

from __future__ import annotations

import re
from functools import cache

from pwdlib import PasswordHash

from newsletter.errors import InputError

MIN_LENGTH = 12
# Argon2 takes any length; a form or a pipe giving more than this is a mistake, not a password.
MAX_LENGTH = 256
# Keyboard rows and runs: a password that is a piece of one (or of it repeated) is guessed first.
RUNS = (
    "0123456789" * 4,
    "9876543210" * 4,
    "abcdefghijklmnopqrstuvwxyz" * 2,
    "qwertyuiopasdfghjklzxcvbnm" * 2,
    "qwertzuiopasdfghjklyxcvbnm" * 2,
    "azertyuiopqsdfghjklmwxcvbn" * 2,
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p" * 2,
)
# Words at the root of the passwords most often tried (each with digits or signs added).
COMMON_WORDS = frozenset(
    """password passw0rd p@ssword p@ssw0rd letmein welcome welcome1 admin administrator
    iloveyou sunshine princess football baseball monkey dragon master superman batman
    trustno1 starwars whatever shadow michael jennifer newsletter editor changeme secret
    qwerty qwertz azerty abc123 login passwort hallo geheim""".split()  # noqa: SIM905
)


def problem(password: str, email: str) -> str | None:
    """Why this password is refused for this editor, in words a person can act on; None: fine."""
    if len(password) < MIN_LENGTH:
        return f"use at least {MIN_LENGTH} characters (a few unrelated words make a good one)"
    if len(password) > MAX_LENGTH:
        return f"use at most {MAX_LENGTH} characters"
    lowered = password.lower()
    if len(set(lowered)) < 5:
        return "it repeats too few characters: anyone guessing tries it early"
    if any(lowered in run for run in RUNS):
        return "it is a run of the keyboard or the alphabet: anyone guessing tries it early"
    root = re.sub(r"[\d\W_]+$", "", re.sub(r"^[\d\W_]+", "", lowered))
    if root in COMMON_WORDS or re.sub(r"(.+?)\1+", r"\1", root) in COMMON_WORDS:
        return "it is one of the most common passwords: anyone guessing tries it first"
    local, _, domain = email.lower().partition("@")
    if email.lower() in lowered or (len(local) >= 4 and local in lowered):
        return "it contains the address it signs in with"
    # The address's own domain ('riverside123' for ed@riverside.example) is the first guess.
    for label in domain.split(".")[:-1]:
        if len(label) >= 4 and label in lowered and len(lowered) - len(label) < 6:
            return "it is the name in the address's domain with a few characters added"
    return None


def check(password: str, email: str) -> None:
    """Raise InputError naming `password` when it is refused."""
    if found := problem(password, email):
        raise InputError("password", f"this password is refused: {found}")


@cache
def _hasher() -> PasswordHash:
    """Argon2id with pwdlib's recommended cost; made on first use, never at import time."""
    return PasswordHash.recommended()


@cache
def _dummy() -> str:
    """A hash no password is known for: an unknown account is verified against it, so it takes
    as long as a wrong password and the answer's time tells nothing."""
    return _hasher().hash("not any editor's password: compared for time only")


def hashed(password: str) -> str:
    return _hasher().hash(password)


def verify(password: str, hashed_password: str | None) -> tuple[bool, str | None]:
    """Whether it matches, and a fresh hash when the stored one used weaker parameters.
    `None` (no such account) is checked against the dummy hash and never matches."""
    if hashed_password is None:
        _hasher().verify(password, _dummy())
        return False, None
    return _hasher().verify_and_update(password, hashed_password)
