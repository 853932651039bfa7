"""Raw RFC 5322 email normalised into a `Ticket`.

Parsing uses the standard library's `email` package with `policy.default`,
which decodes RFC 2047 headers and records defects instead of raising. It is
still not safe on hostile input, so its header parsing goes through a guarded
policy (`_GuardedPolicy`), the message is refused before parsing when it has
too many parts, and a MIME part that cannot be read is skipped and counted.
"""

from __future__ import annotations

import email.header
import email.utils
import hashlib
import logging
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser
from email.policy import EmailPolicy
from typing import Any, NoReturn

from features.errors import FieldProblem, PayloadTooLargeError
from features.intake._email_text import clean_body, html_to_text, tidy
from features.intake._shared import (
    build_ticket,
    fail,
    looks_like_address,
    sanitize_id,
    type_name,
)
from features.schema import Ticket

log = logging.getLogger(__name__)

CHANNEL = "email"
MAX_RAW_EMAIL_BYTES = 2 * 1024 * 1024
# Real mail has a handful of parts two or three levels deep; beyond these the
# message is built to exhaust the parser, not to ask for help.
MAX_MIME_PARTS = 200
MAX_MIME_DEPTH = 16
# The stdlib parser spends about 150 µs on each MIME part, so a message of tens
# of thousands of tiny parts would hold a worker for seconds; it is refused
# before parsing. Counting lines that start with "--" over-counts a little.
MAX_BOUNDARY_LINES = 1_000
# HTML is read with BeautifulSoup at about 25 µs a tag; past this many
# characters the rest is dropped (and counted), which keeps the worst case near
# a second. The new text of a reply is at the top, the history below it.
MAX_HTML_CHARS = 300_000
# Longer header values are cut before parsing (see `_GuardedPolicy`); no header
# Switchboard reads is legitimately longer. Known limitation: a subject of more
# than this many raw characters, mostly encoded words, is cut, not refused.
MAX_PARSED_HEADER_CHARS = 4_000
# RFC 5322's line limit; header values kept in metadata are cut here.
MAX_HEADER_METADATA_CHARS = 998
MAX_FILENAME_CHARS = 255

_BODY_TYPES = ("text/plain", "text/html")
_FORWARD_SUBJECT = re.compile(r"^\s*(fwd?|wg|tr)\s*:", re.I)
_WHITESPACE = re.compile(r"\s+")


class _GuardedPolicy(EmailPolicy):
    """`policy.default`, with header parsing bounded in cost and never raising.

    The stdlib's structured header parser raises IndexError or AttributeError
    on some malformed values (`From: "`, `Message-ID: <`), RecursionError on
    deeply nested comments, and takes time and memory quadratic in the number
    of encoded words (8,000 of them take half a gigabyte). Values are cut to
    `MAX_PARSED_HEADER_CHARS` first, and one it still cannot parse comes back
    as plain decoded text, which the callers handle like any other header.
    """

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if hasattr(value, "name"):
            return value
        bounded = value[:MAX_PARSED_HEADER_CHARS]
        try:
            return super().header_fetch_parse(name, bounded)
        except Exception as err:
            log.warning(
                "unparsable email header, reading it as text",
                extra={"header": name.lower()[:40], "error": type(err).__name__},
            )
            return _decode_encoded_words(bounded)


_POLICY = _GuardedPolicy()


@dataclass
class _Parts:
    """What the MIME walk found: body candidates and attachment descriptions."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    unreadable: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class _Body:
    format: str
    text: str
    html_chars_dropped: int = 0


def normalize_email(raw: bytes | str, *, ticket_id: str | None = None) -> Ticket:
    """Turn one raw RFC 5322 message into a `Ticket`.

    The body is the text/plain part (the HTML one, as text, when there is no
    plain text) without quoted history and signature; the number of characters
    stripped is in `metadata["quoted_chars_stripped"]` and
    `metadata["signature_chars_stripped"]`. A forwarded message ("Fwd:") keeps
    its history, since the forwarded text is what the ticket is about.

    Args:
        raw: the message as bytes, or as text (encoded to UTF-8 first).
        ticket_id: overrides the id taken from Message-ID (or the content hash).

    Raises:
        PayloadTooLargeError: the message is over `MAX_RAW_EMAIL_BYTES`, or a
            field is over the schema's limits.
        InvalidTicketError: not an email at all (no header fields), or
            neither a subject nor a body.
    """
    data = _raw_bytes(raw)
    _check_part_count(data)
    message = _parse(data)
    if not message.keys():
        fail(
            CHANNEL,
            "payload",
            "no header fields found; expected a raw RFC 5322 message "
            "(header lines, a blank line, then the body)",
        )

    subject = _header_text(message, "subject") or ""
    parts = _read_parts(message)
    body = _choose_body(parts)
    cleaned = clean_body(body.text, keep_history=bool(_FORWARD_SUBJECT.match(subject)))
    message_id = _header_text(message, "message-id")
    metadata: dict[str, Any] = {
        "message_id": message_id,
        "in_reply_to": _header_text(message, "in-reply-to"),
        "body_format": body.format,
        "html_chars_dropped": body.html_chars_dropped or None,
        "quoted_chars_stripped": cleaned.quoted_chars,
        "signature_chars_stripped": cleaned.signature_chars,
        "raw_size_bytes": len(data),
        "unreadable_parts": parts.unreadable or None,
        "skipped_parts": parts.skipped or None,
    }
    fields = {
        "id": ticket_id or _message_ticket_id(message_id, data),
        "channel": CHANNEL,
        "subject": subject,
        "body": cleaned.text,
        "requester": _requester(message),
        "created_at": _sent_at(message),
        "attachments": parts.attachments,
        "metadata": {
            key: value[:MAX_HEADER_METADATA_CHARS] if isinstance(value, str) else value
            for key, value in metadata.items()
            if value is not None
        },
    }
    return build_ticket(fields, CHANNEL)


def _raw_bytes(raw: object) -> bytes:
    """The message as bytes, refused before parsing when over the size limit."""
    if isinstance(raw, bytes | bytearray | memoryview):
        data = bytes(raw)
    elif isinstance(raw, str):
        # Cheap first check: UTF-8 never takes fewer bytes than characters.
        if len(raw) > MAX_RAW_EMAIL_BYTES:
            _raise_too_large(len(raw))
        try:
            # Undoes the surrogateescape decoding that text from bytes may carry.
            data = raw.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            data = raw.encode("utf-8", "surrogatepass")
    else:
        reason = f"expected raw email bytes or text, got {type_name(raw)}"
        fail(CHANNEL, "payload", reason)

    if len(data) > MAX_RAW_EMAIL_BYTES:
        _raise_too_large(len(data))
    return data


def _raise_too_large(size: int) -> NoReturn:
    problem = FieldProblem(
        "payload", f"raw email is {size} bytes or more", f"{MAX_RAW_EMAIL_BYTES} bytes"
    )
    raise PayloadTooLargeError([problem], channel=CHANNEL)


def _check_part_count(data: bytes) -> None:
    """Refuse, before parsing, a message of more parts than is worth reading."""
    boundary_lines = data.count(b"\n--")
    if boundary_lines > MAX_BOUNDARY_LINES and b"multipart/" in data.lower():
        problem = FieldProblem(
            "payload",
            f"too many MIME parts ({boundary_lines} boundary lines)",
            f"{MAX_BOUNDARY_LINES} boundary lines",
        )
        raise PayloadTooLargeError([problem], channel=CHANNEL)


def _parse(data: bytes) -> Message:
    try:
        return BytesParser(policy=_POLICY).parsebytes(data)
    except RecursionError as err:
        # The parser recurses once per nested multipart.
        reason = "MIME parts are nested too deeply to read"
        fail(CHANNEL, "payload", reason, cause=err)
    except Exception as err:
        log.warning(
            "email could not be parsed",
            extra={"error": type(err).__name__, "raw_size_bytes": len(data)},
        )
        reason = f"could not be parsed as an email ({type(err).__name__})"
        fail(CHANNEL, "payload", reason, cause=err)


def _header_text(message: Message, name: str) -> str | None:
    value = message.get(name)
    if value is None:
        return None
    text = _WHITESPACE.sub(" ", _clean_text(str(value))).strip()
    return text or None


def _decode_encoded_words(value: str) -> str:
    """RFC 2047 decoding by the legacy API, for headers the new one rejects."""
    try:
        chunks = email.header.decode_header(value)
    except Exception:
        return value
    return "".join(
        _decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk
        for chunk, charset in chunks
    )


def _requester(message: Message) -> str | None:
    """The From address alone (no display name), when it looks like one."""
    header = message.get("from")
    if header is None:
        return None
    try:
        addresses = getattr(header, "addresses", None)
        address = addresses[0].addr_spec if addresses else None
        address = address or email.utils.parseaddr(str(header))[1]
    except Exception:
        return None

    address = _clean_text(address).strip()
    return address if looks_like_address(address) else None


def _sent_at(message: Message) -> datetime | None:
    """The Date header as an aware datetime; None when absent or unreadable."""
    header = message.get("date")
    if header is None:
        return None
    try:
        if hasattr(header, "datetime"):
            sent_at = header.datetime
        else:
            sent_at = email.utils.parsedate_to_datetime(str(header))
    except Exception:
        return None
    if not isinstance(sent_at, datetime):
        return None
    return sent_at if sent_at.tzinfo else sent_at.replace(tzinfo=UTC)


def _read_parts(message: Message) -> _Parts:
    """Walk the MIME tree without recursion, bounded in parts and depth."""
    parts = _Parts()
    stack: list[tuple[Message, int]] = [(message, 0)]
    visited = 0
    while stack:
        part, depth = stack.pop()
        visited += 1
        if visited > MAX_MIME_PARTS:
            parts.skipped += len(stack) + 1
            break
        if part.is_multipart() and not _content_type(part).startswith("message/"):
            children = part.get_payload()
            if depth >= MAX_MIME_DEPTH or not isinstance(children, list):
                parts.skipped += 1
                continue
            nested = [child for child in children if isinstance(child, Message)]
            stack.extend((child, depth + 1) for child in reversed(nested))
            continue
        _read_leaf(part, parts)
    return parts


def _content_type(part: Message) -> str:
    """The part's content type; guarded for the same reason as `_read_leaf`."""
    try:
        return part.get_content_type()
    except Exception:
        return "application/octet-stream"


def _read_leaf(part: Message, parts: _Parts) -> None:
    """Add one leaf part to the body candidates or to the attachments."""
    # Decoding base64, quoted-printable or uuencode may still trip on a defect
    # the parser let through; that must cost one part, not the ticket.
    try:
        content_type = part.get_content_type()
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        charset = part.get_content_charset()
        payload = part.get_payload(decode=True)
    except Exception as err:
        log.warning(
            "unreadable email part skipped", extra={"error": type(err).__name__}
        )
        parts.unreadable += 1
        return

    if content_type.startswith("message/"):
        # A forwarded or bounced message: listed, not read into the body.
        size = _message_size(part)
        parts.attachments.append(_attachment(filename, content_type, size, parts))
        return
    content = payload if isinstance(payload, bytes) else b""
    # A multipart without a boundary is a leaf; its text is all there is.
    is_text = content_type in _BODY_TYPES or content_type.startswith("multipart/")
    if is_text and disposition != "attachment" and not filename:
        text = _decode_bytes(content, charset)
        (parts.html if content_type == "text/html" else parts.plain).append(text)
        return
    parts.attachments.append(_attachment(filename, content_type, len(content), parts))


def _message_size(part: Message) -> int:
    try:
        return len(part.as_bytes())
    except Exception:
        return 0


def _attachment(
    filename: str | None, content_type: str, size_bytes: int, parts: _Parts
) -> dict[str, Any]:
    """An attachment's description; the content itself is never kept."""
    name = _clean_text(filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name:
        number = len(parts.attachments) + 1
        name = f"attachment-{number}{mimetypes.guess_extension(content_type) or ''}"
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, extension = name.rpartition(".")
        if dot and len(extension) <= 16:
            name = f"{stem[: MAX_FILENAME_CHARS - len(extension) - 1]}.{extension}"
        else:
            name = name[:MAX_FILENAME_CHARS]
    return {
        "filename": name,
        "content_type": _clean_text(content_type)[:MAX_FILENAME_CHARS],
        "size_bytes": size_bytes,
    }


def _choose_body(parts: _Parts) -> _Body:
    """Plain text when a plain part has any; otherwise the HTML read as text."""
    plain = "\n\n".join(_clean_text(text) for text in parts.plain)
    if plain.strip():
        return _Body("plain", plain)
    markup = "\n".join(_clean_text(text) for text in parts.html)
    if markup.strip():
        # Cut after a tag's end, so no construct is left open at the cut.
        cut = len(markup)
        if cut > MAX_HTML_CHARS:
            cut = markup.rfind(">", 0, MAX_HTML_CHARS) + 1 or MAX_HTML_CHARS
        return _Body("html", html_to_text(markup[:cut]), len(markup) - cut)
    return _Body("none", tidy(plain))


def _message_ticket_id(message_id: str | None, data: bytes) -> str:
    """The Message-ID made safe, else a hash of the whole raw message."""
    safe_id = sanitize_id(message_id) if message_id else None
    return safe_id or f"{CHANNEL}-{hashlib.sha256(data).hexdigest()[:32]}"


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes to text in the declared charset, never raising.

    An unknown or unusable charset ("x-unknown", or a non-text codec such as
    "base64") falls back to UTF-8; undecodable bytes become U+FFFD.
    """
    if charset:
        try:
            return data.decode(charset, "replace")
        except (LookupError, UnicodeError, ValueError, TypeError):
            pass
    return data.decode("utf-8", "replace")


def _clean_text(value: str) -> str:
    """Text safe to store: bytes the parser kept as surrogates become U+FFFD.

    The parser keeps undecodable header bytes as surrogate escapes; raw UTF-8
    headers (common, though not RFC 5322) come back correctly from them.
    """
    try:
        encoded = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        encoded = value.encode("utf-8", "surrogatepass")
    return encoded.decode("utf-8", "replace")
