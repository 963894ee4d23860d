"""Building messages: quoted-printable pieces, header folding, no injection. Pure."""

from __future__ import annotations

import email
import email.policy
import quopri

from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.editions.compose import Markers
from newsletter.editions.personalize import Reader
from newsletter.sending.messages import MessageTemplate, _fold, _qp


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=300
        ),
        max_size=5,
    )
)
def test_encoded_pieces_join_into_valid_quoted_printable(parts: list[str]) -> None:
    joined = b"".join(_qp(part) for part in parts)
    assert all(len(line) <= 76 for line in joined.split(b"\r\n"))
    assert b"\n" not in joined.replace(b"\r\n", b"")
    assert quopri.decodestring(joined).decode("utf-8").replace("\r\n", "\n") == "".join(parts)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_headers_never_break_on_data(value: str) -> None:
    folded = _fold("Subject", value)
    lines = folded.split(b"\r\n")
    assert lines[-1] == b"" and all(line.startswith((b"Subject:", b" ")) for line in lines[:-1])
    assert all(len(line) <= 998 for line in lines)


def test_a_copy_is_a_whole_message_with_its_reader_in_it() -> None:
    markers = Markers.fresh()
    html = (
        f"<p>{markers.token('greeting')}</p>"
        + "<td style='padding:16px 32px'>x</td>" * 400
        + f"<a href='{markers.token('unsubscribe_url')}'>u</a>"
    )
    template = MessageTemplate(
        subject="Weekly: Zürich\r\nBcc: x@example.com",
        html=html,
        text=f"{markers.token('greeting')}\n{markers.token('preferences_url')}\n",
        from_name="The European Times",
        from_address="n@europeantimes.example",
        reply_to="e@europeantimes.example",
        list_name="Weekly",
        list_id="weekly.europeantimes.example",
        unsubscribe_mailto="e@europeantimes.example",
        markers=markers,
    )
    reader = Reader("Ann <b> & co", "https://n.example/unsubscribe/T1", "https://n.example/preferences/T2")
    envelope = template.render("ann@example.com", "Ann\r\nBcc: y@example.com", reader, "7.9")
    assert all(len(line) <= 78 for line in envelope.data.split(b"\r\n"))
    message = email.message_from_bytes(envelope.data, policy=email.policy.default)
    assert message["Bcc"] is None and message["Subject"] == "Weekly: Zürich Bcc: x@example.com"
    text, body = (part.get_content() for part in message.iter_parts())
    assert "Hello Ann &lt;b&gt; &amp; co," in body and "href='https://n.example/unsubscribe/T1'" in body
    assert text.replace("\r\n", "\n") == "Hello Ann <b> & co,\nhttps://n.example/preferences/T2\n"
    assert (
        message["List-Unsubscribe"]
        == "<https://n.example/unsubscribe/T1>, <mailto:e@europeantimes.example?subject=unsubscribe>"
    )
