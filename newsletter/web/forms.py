"""Reading a posted form: urlencoded or multipart, a few small fields, no files."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

from newsletter.i18n import N_
from newsletter.services.readers import ReaderError
from newsletter.text import control_character
from newsletter.web.security import MAX_BODY, BodyTooLarge

MAX_FIELDS = 200
CONTROL_REFUSED = N_(
    "A field of this form holds a control character (such as NUL), which no text here may hold. "
    "Type the text again, without it, and send the form."
)


async def read_form(request: Request) -> FormData:
    """The form's fields; a body that is too large, malformed or carries a file is an
    HTTPException (413 or 400) that the error page answers, one holding a control character a
    ReaderError (its page says so)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        raise HTTPException(413, "the form is too large")
    try:
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            (await request.body()).decode("utf-8")  # the parser would read other bytes as Latin-1
        form = await request.form(max_files=0, max_fields=MAX_FIELDS, max_part_size=16 * 1024)
    except BodyTooLarge:
        raise HTTPException(413, "the form is too large") from None
    except UnicodeDecodeError:
        raise HTTPException(400, "the form is not UTF-8") from None
    if any(isinstance(value, str) and "\ufffd" in value for _name, value in form.multi_items()):
        raise HTTPException(400, "the form is not UTF-8")  # %FF and the like, decoded as U+FFFD
    if any(
        control_character(name) or (isinstance(value, str) and control_character(value))
        for name, value in form.multi_items()
    ):  # the rule a CSV's cells follow: the store (PostgreSQL) never sees a NUL
        raise ReaderError(CONTROL_REFUSED)
    return form


def text(form: FormData, name: str, limit: int = 1000) -> str:
    """One text field, trimmed; a file or a missing field reads as empty."""
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def texts(form: FormData, name: str, limit: int = 50) -> list[str]:
    return [value.strip() for value in form.getlist(name)[:limit] if isinstance(value, str) and value.strip()]
