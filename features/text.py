"""Building the text the encoder sees from a ticket's subject and body."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n{3,}")

# Word pieces, [CLS] and [SEP]: the encoder adds two special tokens.
SPECIAL_TOKENS = 2


class Tokenizer(Protocol):
    def __call__(self, text: str, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class EncoderText:
    text: str
    is_truncated: bool


def build_text(
    subject: str,
    body: str,
    *,
    max_tokens: int = 256,
    tokenizer: Tokenizer | None = None,
) -> EncoderText:
    """Join subject and body into one encoder input that fits the token limit.

    The subject always comes first, so a long body cannot push it out of the
    encoder's window. With a tokenizer the cut falls exactly on the last token
    that fits; without one it uses a cautious four characters per token.
    """
    subject = _clean(subject)
    body = _clean(body)
    text = f"{subject}\n{body}" if subject and body else subject or body

    budget = max_tokens - SPECIAL_TOKENS
    # A word piece is at least one character, so a short text always fits.
    if len(text) <= budget:
        return EncoderText(text, is_truncated=False)
    if tokenizer is None:
        cut = budget * 4
        return EncoderText(text[:cut], is_truncated=len(text) > cut)

    encoded = tokenizer(
        text,
        add_special_tokens=False,
        return_offsets_mapping=True,
        truncation=False,
        verbose=False,
    )
    offsets = encoded["offset_mapping"]
    if len(offsets) <= budget:
        return EncoderText(text, is_truncated=False)
    end = offsets[budget - 1][1]
    return EncoderText(text[:end], is_truncated=True)


def build_texts(
    subjects: list[str],
    bodies: list[str],
    *,
    max_tokens: int = 256,
    tokenizer: Tokenizer | None = None,
) -> list[str]:
    """`build_text` over parallel lists, returning only the texts."""
    return [
        build_text(subject, body, max_tokens=max_tokens, tokenizer=tokenizer).text
        for subject, body in zip(subjects, bodies, strict=True)
    ]


def _clean(text: str | None) -> str:
    if not text:
        return ""
    text = _SPACES.sub(" ", text.replace("\u00a0", " "))
    return _BLANK_LINES.sub("\n\n", text).strip()
