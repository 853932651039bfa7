"""On any input at all, every adapter returns a Ticket or an InvalidTicketError.

Callers map `InvalidTicketError` to a 4xx; any other exception would be a 500
for what is only bad input, so these properties are the adapters' contract.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.errors import InvalidTicketError
from features.intake import (
    normalize,
    normalize_alertmanager,
    normalize_api,
    normalize_chat,
    normalize_email,
    normalize_portal,
)
from features.schema import Ticket

PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# --- valid payloads the fuzzed variants start from ------------------------------

VALID_CHAT: dict[str, Any] = {
    "id": "c-1",
    "turns": [
        {"role": "bot", "text": "Hi!", "at": "2024-06-04T09:00:00Z"},
        {"role": "customer", "text": "Charged twice", "at": "2024-06-04T09:00:05Z"},
        {"role": "agent", "text": "Checking."},
    ],
    "customer": {"email": "ana@example.com", "name": "Ana", "id": 7},
    "account_id": "ACME-1",
    "started_at": "2024-06-04T09:00:00+02:00",
}
VALID_PORTAL: dict[str, Any] = {
    "id": 12,
    "subject": "Export broken",
    "description": "CSV export does nothing.",
    "email": "ana@example.com",
    "category": "reporting",
    "account": {"id": "ACME-1", "tier": "enterprise"},
    "priority_requested": "high",
    "submitted_at": "2024-06-04T09:00:00Z",
    "attachments": [
        {"filename": "a.png", "content_type": "image/png", "size_bytes": 3}
    ],
    "custom_fields": {"browser": "Firefox", "users": [1, 2]},
    "page": "/reports",
}
VALID_ALERT: dict[str, Any] = {
    "version": "4",
    "status": "firing",
    "receiver": "switchboard",
    "groupKey": '{}:{alertname="DiskFull"}',
    "groupLabels": {"alertname": "DiskFull"},
    "commonLabels": {"alertname": "DiskFull", "severity": "critical", "job": "node"},
    "commonAnnotations": {"summary": "Disk almost full"},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "DiskFull",
                "severity": "critical",
                "instance": "a",
            },
            "annotations": {"description": "95% used"},
            "startsAt": "2024-06-04T09:00:00.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph",
            "fingerprint": "f1",
        }
    ],
}
VALID_API: dict[str, Any] = {
    "id": "T-1",
    "subject": "Login fails",
    "body": "SSO loops back to the login page.",
    "metadata": {"source": "helpdesk"},
}
VALID_EMAIL = (
    "From: =?utf-8?b?QW7DoQ==?= <ana@example.com>\r\n"
    "Subject: =?iso-8859-1?q?Probl=E8me?=\r\n"
    "Date: Tue, 04 Jun 2024 09:12:00 +0200\r\n"
    "Message-ID: <m1@example.com>\r\n"
    'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    "--b1\r\n"
    'Content-Type: multipart/alternative; boundary="b2"\r\n\r\n'
    "--b2\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    "Caf=C3=A9 broken.\r\n\r\nOn Mon, 3 Jun 2024, S <s@example.com> wrote:\r\n> old\r\n"
    "--b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    "<p>Caf&eacute; broken.</p><blockquote>old</blockquote>\r\n"
    "--b2--\r\n"
    "--b1\r\n"
    'Content-Type: application/pdf; name="a.pdf"\r\n'
    "Content-Disposition: attachment; filename*=utf-8''%C3%A9.pdf\r\n"
    "Content-Transfer-Encoding: base64\r\n\r\n"
    f"{base64.b64encode(b'%PDF-1.7').decode()}\r\n"
    "--b1--\r\n"
).encode("ascii")

# --- strategies -----------------------------------------------------------------

KNOWN_KEYS = sorted(
    {
        key
        for payload in (VALID_CHAT, VALID_PORTAL, VALID_ALERT, VALID_API)
        for key in payload
    }
    | {
        "role",
        "text",
        "at",
        "labels",
        "annotations",
        "startsAt",
        "fingerprint",
        "title",
    }
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=10)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(json_keys, children, max_size=6)
    ),
    max_leaves=25,
)


def node_paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths to every node below the root of a JSON-like value."""
    children = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in children:
        yield (*prefix, key)
        if isinstance(child, dict | list):
            yield from node_paths(child, (*prefix, key))


@st.composite
def fuzzed(draw: st.DrawFn, valid: dict[str, Any]) -> dict[str, Any]:
    """A valid payload with a few nodes replaced by arbitrary values or removed."""
    payload = copy.deepcopy(valid)
    paths = list(node_paths(payload))
    for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=4)):
        # An earlier edit may have replaced or removed part of this path.
        parent = _container_at(payload, path[:-1])
        if parent is None or not _has(parent, path[-1]):
            continue
        if draw(st.booleans()):
            parent[path[-1]] = draw(json_values)
        else:
            del parent[path[-1]]
    return payload


def _has(container: Any, key: Any) -> bool:
    if isinstance(container, dict):
        return key in container
    return isinstance(container, list) and isinstance(key, int) and key < len(container)


def _container_at(
    value: Any, path: tuple[Any, ...]
) -> dict[Any, Any] | list[Any] | None:
    """The dict or list at `path`, or None when the path no longer leads to one."""
    for key in path:
        if not _has(value, key):
            return None
        value = value[key]
    return value if isinstance(value, dict | list) else None


@st.composite
def mangled_bytes(draw: st.DrawFn, valid: bytes) -> bytes:
    """Valid bytes with a few slices replaced by random or structural bytes."""
    data = bytearray(valid)
    tokens = st.binary(max_size=8) | st.sampled_from(
        [b"\r\n", b"\r\n\r\n", b"--b1", b"--b2--", b"=?", b"?=", b";", b'"', b"\xff"]
    )
    for _ in range(draw(st.integers(1, 6))):
        start = draw(st.integers(0, len(data)))
        end = draw(st.integers(start, min(len(data), start + 40)))
        data[start:end] = draw(tokens)
    return bytes(data)


HEADER_TOKENS = [
    "=?utf-8?b?", "=?iso-8859-1?q?", "=?idna?q?", "=?x-unknown?b?", "=?utf-8*en?q?",
    "?=", "<", ">", "@", '"', "\\", "(", ")", ",", ";", ":", "=", "'", "%ff", "%C3",
    "multipart/mixed", "multipart/alternative", "boundary=", "text/html", "text/plain",
    "charset=", "filename*=", "filename*0*=", "utf-8''", "base64", "quoted-printable",
    "x-uuencode", "attachment", "inline", "\t", " ", "\r\n ", "é", "Mon, 32 Foo 99999",
    "+9999", "undisclosed-recipients:;", "a@b", "@", "[", "]",
]  # fmt: skip
header_values = st.lists(
    st.sampled_from(HEADER_TOKENS) | st.text(max_size=6), max_size=12
).map("".join)
header_names = st.sampled_from(
    [
        "Subject", "From", "To", "Date", "Message-ID", "In-Reply-To", "Content-Type",
        "Content-Transfer-Encoding", "Content-Disposition", "MIME-Version", "X-Any",
    ]
)  # fmt: skip


@st.composite
def header_heavy_emails(draw: st.DrawFn) -> bytes:
    """Messages whose headers are built from the parser's special characters."""
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=8))
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    body = draw(st.binary(max_size=200) | st.just(VALID_EMAIL.split(b"\r\n\r\n", 1)[1]))
    return head.encode("utf-8") + b"\r\n" + body


HTML_TOKENS = [
    "<p>", "</p>", "<br>", "<div>", "<blockquote>", "</blockquote>", "<pre>", "</pre>",
    "<script>", "</script>", "<style>", "<head>", "<li>", "<table><tr><td>", "<!--",
    "-->", "<![CDATA[", "]]>", "<![if mso]>", "<![endif]>", "<![x", "<!DOCTYPE html>",
    "<?xml version='1.0'?>", "&amp;", "&#0;", "&#99999999;", "<a href='", "'>", "<",
    ">", "On 3 Jun 2024, a@b.c wrote:", "-- ", "Thanks,", "> ", "\n", " ", "\x00",
]  # fmt: skip


@st.composite
def html_emails(draw: st.DrawFn) -> bytes:
    """HTML-only messages whose markup is built from the parser's hard cases."""
    pieces = st.sampled_from(HTML_TOKENS) | st.text(max_size=6)
    markup = "".join(draw(st.lists(pieces, max_size=60)))
    charset = draw(st.sampled_from(["utf-8", "iso-8859-1", "utf-16", "x-bogus"]))
    head = f"Subject: s\r\nContent-Type: text/html; charset={charset}\r\n\r\n"
    return head.encode() + markup.encode("utf-8", "surrogatepass")


email_inputs = (
    st.binary(max_size=2_000)
    | st.text(max_size=2_000)
    | header_heavy_emails()
    | html_emails()
    | mangled_bytes(VALID_EMAIL)
)


def assert_ticket_or_refused(adapter: Callable[..., Ticket], payload: Any) -> None:
    """Any exception but InvalidTicketError propagates and fails the test."""
    try:
        ticket = adapter(payload)
    except InvalidTicketError:
        return
    assert isinstance(ticket, Ticket)


# --- properties -----------------------------------------------------------------


def test_the_valid_payloads_the_fuzzing_starts_from_are_accepted() -> None:
    assert normalize_email(VALID_EMAIL).body == "Café broken."
    for adapter, payload in [
        (normalize_chat, VALID_CHAT),
        (normalize_portal, VALID_PORTAL),
        (normalize_alertmanager, VALID_ALERT),
        (normalize_api, VALID_API),
    ]:
        assert isinstance(adapter(payload), Ticket)


@PROPERTY_SETTINGS
@given(raw=email_inputs)
def test_email_adapter_returns_a_ticket_or_refuses_on_any_bytes(
    raw: bytes | str,
) -> None:
    assert_ticket_or_refused(normalize_email, raw)


@PROPERTY_SETTINGS
@given(payload=json_values | fuzzed(VALID_CHAT))
def test_chat_adapter_returns_a_ticket_or_refuses_on_any_json(payload: Any) -> None:
    assert_ticket_or_refused(normalize_chat, payload)


@PROPERTY_SETTINGS
@given(payload=json_values | fuzzed(VALID_PORTAL))
def test_portal_adapter_returns_a_ticket_or_refuses_on_any_json(payload: Any) -> None:
    assert_ticket_or_refused(normalize_portal, payload)


@PROPERTY_SETTINGS
@given(payload=json_values | fuzzed(VALID_ALERT))
def test_alertmanager_adapter_returns_a_ticket_or_refuses_on_any_json(
    payload: Any,
) -> None:
    assert_ticket_or_refused(normalize_alertmanager, payload)


@PROPERTY_SETTINGS
@given(payload=json_values | fuzzed(VALID_API))
def test_api_adapter_returns_a_ticket_or_refuses_on_any_json(payload: Any) -> None:
    assert_ticket_or_refused(normalize_api, payload)


any_payload = (
    json_values
    | fuzzed(VALID_CHAT)
    | fuzzed(VALID_PORTAL)
    | fuzzed(VALID_ALERT)
    | email_inputs
    | fuzzed(VALID_ALERT).map(lambda payload: json.dumps(payload))
    | fuzzed(VALID_PORTAL).map(lambda payload: json.dumps(payload).encode())
)


@PROPERTY_SETTINGS
@given(
    channel=st.sampled_from(["email", "chat", "portal", "alert", "api", " Chat "])
    | st.text(max_size=10)
    | json_scalars,
    payload=any_payload,
)
def test_normalize_returns_a_ticket_or_refuses_on_any_channel_and_payload(
    channel: Any, payload: Any
) -> None:
    assert_ticket_or_refused(lambda data: normalize(channel, data), payload)
