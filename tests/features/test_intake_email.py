"""Raw emails, built here as a mail client would send them, into tickets."""

from __future__ import annotations

import base64
import quopri
from datetime import UTC, datetime

import pytest

from features.errors import InvalidTicketError, PayloadTooLargeError
from features.intake.email import (
    MAX_BOUNDARY_LINES,
    MAX_HTML_CHARS,
    MAX_MIME_DEPTH,
    MAX_PARSED_HEADER_CHARS,
    MAX_RAW_EMAIL_BYTES,
    normalize_email,
)
from features.schema import MAX_ID_CHARS, MAX_SUBJECT_CHARS, Channel

HEADERS = (
    "From: Ana Silva <ana@example.com>\n"
    "To: support@switchboard.example\n"
    "Date: Tue, 04 Jun 2024 09:12:00 +0200\n"
    "Message-ID: <CAF=abc123@mail.example.com>\n"
    "MIME-Version: 1.0\n"
)


def make_email(
    body: str,
    *,
    subject: str = "Invoice is wrong",
    headers: str = HEADERS,
    content_type: str = "text/plain; charset=utf-8",
) -> bytes:
    """A single-part message; `body` is sent as is (8bit)."""
    text = (
        f"{headers}Subject: {subject}\nContent-Type: {content_type}\n"
        f"Content-Transfer-Encoding: 8bit\n\n{body}"
    )
    return text.replace("\n", "\r\n").encode("utf-8")


def make_multipart(
    subtype: str, *parts: str, subject: str = "Printer offline"
) -> bytes:
    """A multipart message from already-encoded parts (headers, blank, body)."""
    boundary = "==sb-boundary-42=="
    chunks = [
        f"{HEADERS}Subject: {subject}\n"
        f'Content-Type: multipart/{subtype}; boundary="{boundary}"\n\n'
        "This is a multi-part message in MIME format.\n"
    ]
    chunks += [f"--{boundary}\n{part}\n" for part in parts]
    chunks.append(f"--{boundary}--\n")
    return "".join(chunks).replace("\n", "\r\n").encode("ascii")


def base64_part(content_type: str, payload: bytes, extra_headers: str = "") -> str:
    encoded = base64.encodebytes(payload).decode("ascii")
    return (
        f"Content-Type: {content_type}\n{extra_headers}"
        f"Content-Transfer-Encoding: base64\n\n{encoded}"
    )


def quoted_printable_part(content_type: str, payload: bytes) -> str:
    encoded = quopri.encodestring(payload).decode("ascii")
    return (
        f"Content-Type: {content_type}\n"
        f"Content-Transfer-Encoding: quoted-printable\n\n{encoded}"
    )


# --- good input ---------------------------------------------------------------


def test_plain_message_becomes_an_email_ticket_with_sender_date_and_id() -> None:
    ticket = normalize_email(make_email("My invoice for May is twice the usual.\n"))

    assert ticket.channel is Channel.EMAIL
    assert ticket.subject == "Invoice is wrong"
    assert ticket.body == "My invoice for May is twice the usual."
    assert ticket.requester == "ana@example.com"
    assert ticket.created_at == datetime(2024, 6, 4, 7, 12, tzinfo=UTC)
    assert ticket.id == "CAF=abc123@mail.example.com"
    assert ticket.metadata["message_id"] == "<CAF=abc123@mail.example.com>"
    assert ticket.metadata["body_format"] == "plain"


def test_text_given_as_str_reads_the_same_as_bytes() -> None:
    raw = make_email("Das Gerät startet nicht.\n")

    assert normalize_email(raw.decode("utf-8")) == normalize_email(raw)


def test_multipart_alternative_prefers_the_plain_text_part() -> None:
    raw = make_multipart(
        "alternative",
        base64_part("text/plain; charset=utf-8", b"Plain: the printer is offline."),
        base64_part(
            "text/html; charset=utf-8", b"<p>HTML: the printer is offline.</p>"
        ),
    )

    ticket = normalize_email(raw)

    assert ticket.body == "Plain: the printer is offline."
    assert ticket.metadata["body_format"] == "plain"


def test_empty_plain_part_falls_back_to_the_html_part() -> None:
    raw = make_multipart(
        "alternative",
        base64_part("text/plain; charset=utf-8", b"   \n"),
        base64_part("text/html; charset=utf-8", b"<p>Only the HTML has text.</p>"),
    )

    assert normalize_email(raw).body == "Only the HTML has text."


def test_html_only_body_is_read_as_text_without_script_or_style() -> None:
    markup = (
        "<html><head><title>t</title><style>p {color: red}</style></head><body>"
        "<script>alert('x')</script><!-- tracking -->"
        "<p>Hello,</p><p>the <b>export</b>\n   button\n does nothing.<br>"
        "Since Monday &amp; still broken.</p><ul><li>Chrome</li><li>Firefox</li></ul>"
        "</body></html>"
    )
    raw = make_multipart(
        "mixed", base64_part("text/html; charset=utf-8", markup.encode())
    )

    ticket = normalize_email(raw)

    assert ticket.body == (
        "Hello,\n\nthe export button does nothing.\nSince Monday & still broken."
        "\n\n- Chrome\n\n- Firefox"
    )
    assert ticket.metadata["body_format"] == "html"
    for hidden in ("alert", "color", "tracking", "<"):
        assert hidden not in ticket.body


def test_html_blockquote_history_is_stripped_and_counted() -> None:
    markup = (
        "<div>Still not fixed, see below.</div>"
        '<div class="gmail_quote"><div class="gmail_attr">On Mon, 3 Jun 2024 at '
        "10:00, Support &lt;support@example.com&gt; wrote:<br></div>"
        "<blockquote><p>Please restart the router.</p>"
        "<blockquote>Older history.</blockquote></blockquote></div>"
    )
    raw = make_email(markup, content_type="text/html; charset=utf-8")

    ticket = normalize_email(raw)

    assert ticket.body == "Still not fixed, see below."
    assert ticket.metadata["quoted_chars_stripped"] > len("Please restart the router.")


def test_base64_part_is_decoded_in_its_charset() -> None:
    text = "Le paiement a échoué deux fois."
    raw = make_multipart(
        "mixed", base64_part("text/plain; charset=iso-8859-1", text.encode("latin-1"))
    )

    assert normalize_email(raw).body == text


def test_quoted_printable_part_is_decoded_in_its_charset() -> None:
    text = "Die Überweisung über 100 € fehlt."
    raw = make_multipart(
        "mixed",
        quoted_printable_part("text/plain; charset=utf-8", text.encode("utf-8")),
    )

    assert normalize_email(raw).body == text


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        pytest.param(
            "=?utf-8?b?"
            + base64.b64encode("Zahlung fehlgeschlagen ✗".encode()).decode()
            + "?=",
            "Zahlung fehlgeschlagen ✗",
            id="utf-8-base64",
        ),
        pytest.param(
            "=?iso-8859-1?q?Probl=E8me_de_facturation?=",
            "Problème de facturation",
            id="latin-1-quoted-printable",
        ),
        pytest.param(
            "Re: =?utf-8?q?caf=C3=A9?= =?utf-8?q?_order?=",
            "Re: café order",
            id="mixed-plain-and-adjacent-words",
        ),
        pytest.param("=?x-unknown?q?abc?= order", None, id="unknown-charset"),
    ],
)
def test_encoded_subject_is_decoded(encoded: str, expected: str | None) -> None:
    ticket = normalize_email(make_email("Body.\n", subject=encoded))

    if expected is None:
        assert "order" in ticket.subject
    else:
        assert ticket.subject == expected


def test_encoded_sender_name_is_dropped_and_only_the_address_kept() -> None:
    headers = HEADERS.replace(
        "From: Ana Silva <ana@example.com>",
        "From: =?utf-8?b?Sm/Dq2wgTcO8bGxlcg==?= <joel.muller@example.de>",
    )

    ticket = normalize_email(make_email("Hallo.\n", headers=headers))

    assert ticket.requester == "joel.muller@example.de"


def test_reply_keeps_new_text_and_counts_the_stripped_history() -> None:
    history = (
        "On Mon, 3 Jun 2024 at 10:00, Support <support@example.com> wrote:\n"
        "> Could you send a screenshot?\n"
        ">\n"
        "> > Original complaint text.\n"
    )
    body = (
        "The screenshot is attached, the error is still there.\n\n"
        "Best regards,\nAna Silva\nHead of Finance, Example Ltd\n\n" + history
    )

    ticket = normalize_email(make_email(body, subject="Re: Invoice is wrong"))

    assert ticket.body == "The screenshot is attached, the error is still there."
    assert ticket.metadata["quoted_chars_stripped"] >= len(history)
    assert ticket.metadata["signature_chars_stripped"] > len("Best regards,")


@pytest.mark.parametrize(
    "history",
    [
        pytest.param(
            "-----Original Message-----\nFrom: Support\nSent: Monday\nOld text.\n",
            id="original-message",
        ),
        pytest.param(
            "________________________________\nFrom: Support <s@example.com>\n"
            "Sent: Monday, June 3, 2024 10:00 AM\nTo: Ana\nSubject: RE: x\n\nOld.\n",
            id="from-sent-block",
        ),
        pytest.param(
            "On Mon, Jun 3, 2024 at 10:00 AM Support <\nsupport@example.com> wrote:\n"
            "Old text without quote marks.\n",
            id="wrapped-reply-header",
        ),
    ],
)
def test_outlook_and_wrapped_histories_are_cut_with_all_that_follows(
    history: str,
) -> None:
    ticket = normalize_email(make_email(f"New question here.\n\n{history}"))

    assert ticket.body == "New question here."
    assert ticket.metadata["quoted_chars_stripped"] >= len(history) - 1


def test_inline_reply_keeps_the_answers_between_quotes() -> None:
    body = (
        "On Mon, 3 Jun 2024, Support <support@example.com> wrote:\n"
        "> Which version?\n"
        "4.2.1\n"
        "> Which browser?\n"
        "Safari 17\n"
    )

    assert normalize_email(make_email(body)).body == "4.2.1\nSafari 17"


def test_a_sentence_ending_in_wrote_is_not_taken_for_a_reply_header() -> None:
    body = "On startup the console wrote:\nfatal: license expired\n"

    assert normalize_email(make_email(body)).body == body.strip()


def test_forwarded_message_keeps_its_history() -> None:
    body = (
        "See the bounce below.\n\n"
        "-----Original Message-----\nFrom: Mailer\nSent: Monday\nDelivery failed.\n"
    )

    ticket = normalize_email(make_email(body, subject="Fwd: delivery failure"))

    assert "Delivery failed." in ticket.body
    assert ticket.metadata["quoted_chars_stripped"] == 0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            "The app crashes.\n\nSent from my iPhone\n", "The app crashes.", id="iphone"
        ),
        pytest.param(
            "The app crashes.\n-- \nAna Silva\nExample Ltd\n+1 555 0100\n"
            "www.example.com\nConfidential: this message is for the addressee only.\n",
            "The app crashes.",
            id="dash-dash-space-delimiter",
        ),
        pytest.param(
            "The app crashes.\n\nThanks,\nAna\n",
            "The app crashes.",
            id="thanks-and-name",
        ),
        pytest.param(
            "The app crashes.\n\nKind regards!\n",
            "The app crashes.",
            id="sign-off-only",
        ),
        pytest.param(
            "The app crashes.\nThanks for looking into it quickly.\n",
            "The app crashes.\nThanks for looking into it quickly.",
            id="thanks-in-a-sentence-is-kept",
        ),
        pytest.param("Thanks,\nAna\n", "Thanks,\nAna", id="nothing-but-a-sign-off"),
    ],
)
def test_signatures_are_stripped(body: str, expected: str) -> None:
    assert normalize_email(make_email(body)).body == expected


def test_attachment_is_described_and_its_content_never_kept() -> None:
    secret = b"%PDF-1.7 invoice-content-that-must-not-leak"
    raw = make_multipart(
        "mixed",
        base64_part("text/plain; charset=utf-8", b"Invoice attached."),
        base64_part(
            'application/pdf; name="invoice-may.pdf"',
            secret,
            'Content-Disposition: attachment; filename="invoice-may.pdf"\n',
        ),
        base64_part("image/png", b"\x89PNG\r\n", "Content-ID: <img1>\n"),
    )

    ticket = normalize_email(raw)

    assert ticket.body == "Invoice attached."
    assert [a.model_dump() for a in ticket.attachments] == [
        {
            "filename": "invoice-may.pdf",
            "content_type": "application/pdf",
            "size_bytes": len(secret),
        },
        {"filename": "attachment-2.png", "content_type": "image/png", "size_bytes": 6},
    ]
    dumped = ticket.model_dump_json()
    assert "invoice-content" not in dumped
    assert base64.b64encode(secret).decode()[:20] not in dumped


def test_attachment_file_name_loses_its_directories() -> None:
    raw = make_multipart(
        "mixed",
        base64_part("text/plain", b"Log attached."),
        base64_part(
            "text/plain",
            b"log",
            'Content-Disposition: attachment; filename="C:\\\\tmp\\\\app.log"\n',
        ),
    )

    assert normalize_email(raw).attachments[0].filename == "app.log"


def test_long_message_id_is_sanitised_within_the_id_limit() -> None:
    long_id = "<" + "a b/c?" * 60 + "@example.com>"
    headers = HEADERS.replace("<CAF=abc123@mail.example.com>", long_id)

    ticket = normalize_email(make_email("Body.\n", headers=headers))

    assert len(ticket.id) <= MAX_ID_CHARS
    assert " " not in ticket.id
    assert "/" not in ticket.id


def test_message_without_message_id_gets_a_stable_content_hash_id() -> None:
    headers = HEADERS.replace("Message-ID: <CAF=abc123@mail.example.com>\n", "")
    raw = make_email("Body.\n", headers=headers)

    first, second = normalize_email(raw), normalize_email(raw)
    other = normalize_email(make_email("Other body.\n", headers=headers))

    assert first.id == second.id
    assert first.id.startswith("email-")
    assert other.id != first.id


def test_given_ticket_id_wins_over_message_id() -> None:
    assert normalize_email(make_email("Body.\n"), ticket_id="T-1").id == "T-1"


def test_unparseable_date_leaves_the_intake_time() -> None:
    headers = HEADERS.replace("Tue, 04 Jun 2024 09:12:00 +0200", "yesterday-ish")
    before = datetime.now(UTC)

    ticket = normalize_email(make_email("Body.\n", headers=headers))

    assert ticket.created_at >= before


@pytest.mark.parametrize(
    ("content_type", "payload"),
    [
        pytest.param(
            "text/plain; charset=utf-8", b"caf\xe9 \xff broken", id="bad-utf-8"
        ),
        pytest.param(
            "text/plain; charset=x-no-such-charset", b"caf\xc3\xa9", id="unknown"
        ),
        pytest.param("text/plain; charset=base64", b"caf\xc3\xa9", id="non-text-codec"),
        pytest.param(
            "text/plain; charset=idna", b"caf\xc3\xa9", id="strict-only-codec"
        ),
    ],
)
def test_undecodable_or_unknown_charsets_never_fail(
    content_type: str, payload: bytes
) -> None:
    raw = make_multipart("mixed", base64_part(content_type, payload))

    assert normalize_email(raw).body.startswith("caf")


def test_raw_8bit_header_bytes_are_read_as_utf8_or_replaced() -> None:
    raw = make_email("Body.\n", subject="Caf\u00e9").replace(b"Caf\xc3\xa9", b"Caf\xe9")

    assert normalize_email(raw).subject == "Caf\ufffd"


# --- malformed input ------------------------------------------------------------


def test_message_over_the_size_limit_is_refused_naming_the_limit() -> None:
    raw = make_email("x" * (MAX_RAW_EMAIL_BYTES + 1))

    with pytest.raises(PayloadTooLargeError) as caught:
        normalize_email(raw)

    assert "payload" in str(caught.value)
    assert str(MAX_RAW_EMAIL_BYTES) in str(caught.value)


def test_subject_over_the_schema_limit_is_refused_as_too_large() -> None:
    raw = make_email("Body.\n", subject="s" * (MAX_SUBJECT_CHARS + 1))

    with pytest.raises(PayloadTooLargeError) as caught:
        normalize_email(raw)

    assert "subject" in str(caught.value)
    assert str(MAX_SUBJECT_CHARS) in str(caught.value)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\r\n\r\n   \r\n", id="blank-lines"),
        pytest.param(b"\x00\x01\x02 not an email at all", id="binary-garbage"),
        pytest.param("just some text, no headers", id="plain-text"),
    ],
)
def test_input_without_any_header_is_not_an_email(raw: bytes | str) -> None:
    with pytest.raises(InvalidTicketError) as caught:
        normalize_email(raw)

    assert "payload" in str(caught.value)
    assert "RFC 5322" in str(caught.value)


def test_message_with_neither_subject_nor_body_is_refused() -> None:
    with pytest.raises(InvalidTicketError) as caught:
        normalize_email(b"From: a@example.com\r\n\r\n   \r\n")

    assert "body" in str(caught.value)


@pytest.mark.parametrize(
    "raw",
    [pytest.param({"subject": "x"}, id="dict"), pytest.param(42, id="int")],
)
def test_non_text_payload_is_refused_naming_the_payload(raw: object) -> None:
    with pytest.raises(InvalidTicketError) as caught:
        normalize_email(raw)  # type: ignore[arg-type]

    assert "payload" in str(caught.value)


# --- hostile input: the stdlib's weak spots -------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        pytest.param('From: "', id="from-lone-quote-index-error"),
        pytest.param("From: \\@[", id="from-attribute-error"),
        pytest.param("Message-ID: <", id="message-id-index-error"),
        pytest.param("Content-Type: text/plain; (" + "(" * 3_000, id="nested-comments"),
    ],
)
def test_headers_that_crash_the_stdlib_parser_are_read_as_text(header: str) -> None:
    raw = f"{header}\r\nSubject: Still readable\r\n\r\nThe body.\r\n".encode()

    ticket = normalize_email(raw)

    assert ticket.subject == "Still readable"
    assert ticket.body == "The body."
    assert ticket.requester is None


@pytest.mark.timeout(10)
def test_subject_of_many_encoded_words_is_read_in_bounded_time_and_memory() -> None:
    # Unbounded, the stdlib parser needs tens of gigabytes for this header.
    raw = b"Subject: " + b"=?utf-8?q?abc?= " * 100_000 + b"\r\n\r\nBody.\r\n"

    ticket = normalize_email(raw)

    assert ticket.subject.startswith("abcabc")
    assert len(ticket.subject) <= MAX_PARSED_HEADER_CHARS


def test_deeply_nested_multiparts_are_refused_naming_the_payload() -> None:
    nesting = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (n, n)
        for n in range(MAX_BOUNDARY_LINES + 1)
    )
    raw = b"Subject: deep\r\n" + nesting + b"Content-Type: text/plain\r\n\r\nhi\r\n"

    with pytest.raises(PayloadTooLargeError) as caught:
        normalize_email(raw)

    assert "payload" in str(caught.value)
    assert f"{MAX_BOUNDARY_LINES} boundary lines" in str(caught.value)


def test_parts_nested_beyond_the_depth_limit_are_skipped_and_counted() -> None:
    nesting = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (n, n)
        for n in range(MAX_MIME_DEPTH + 2)
    )
    raw = b"Subject: deep\r\n" + nesting + b"Content-Type: text/plain\r\n\r\nhi\r\n"

    ticket = normalize_email(raw)

    assert ticket.body == ""
    assert ticket.metadata["skipped_parts"] == 1


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "unit",
    [
        pytest.param("<a ", id="unclosed-start-tags"),
        pytest.param("<!--x", id="unclosed-comments"),
        pytest.param("<![CDATA[x]>", id="unclosed-cdata"),
        pytest.param("<blockquote>x", id="nested-quotes"),
        pytest.param("<div>x", id="nested-blocks"),
        pytest.param("<![x", id="markup-bs4-rejects"),
    ],
)
def test_hostile_html_is_read_in_bounded_time(unit: str) -> None:
    # Python 3.11's html.parser alone takes over a minute on some of these.
    markup = unit * (MAX_HTML_CHARS // len(unit))
    raw = make_email(markup, content_type="text/html; charset=utf-8")

    try:
        ticket = normalize_email(raw)
    except PayloadTooLargeError as err:
        assert "body" in str(err)
    else:
        assert "<a " not in ticket.body


def test_html_beyond_its_limit_is_cut_and_the_cut_counted() -> None:
    markup = "<p>Top of the message.</p>" + "<!-- padding -->" * (MAX_HTML_CHARS // 10)
    raw = make_email(markup, content_type="text/html; charset=utf-8")

    ticket = normalize_email(raw)

    assert ticket.body == "Top of the message."
    assert ticket.metadata["html_chars_dropped"] >= len(markup) - MAX_HTML_CHARS
