"""Readable text from email bodies: HTML to text, quoted history and signatures out.

The heuristics here are deliberately conservative: a line is only taken for
history or a signature when its shape is unmistakable, because text wrongly
dropped is worse for routing than a little quoted text kept.
"""

from __future__ import annotations

import html
import re
import warnings
from dataclasses import dataclass

from bs4 import (
    BeautifulSoup,
    MarkupResemblesLocatorWarning,
    ParserRejectedMarkup,
    XMLParsedAsHTMLWarning,
)
from bs4.element import (
    Comment,
    Declaration,
    Doctype,
    NavigableString,
    PageElement,
    ProcessingInstruction,
    Tag,
)

# Text after a "--" line (without the standard trailing space) is a signature
# only when it is this short; longer, and the dashes were probably a separator.
MAX_DASH_SIGNATURE_LINES = 10
# A sign-off ("Thanks,") counts when at most this many short lines follow it.
MAX_NAME_BLOCK_LINES = 4
MAX_NAME_BLOCK_LINE_CHARS = 60

_DROPPED_TAGS = ("script", "style", "head", "noscript", "template")
_BLOCK_TAGS = (
    "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt",
    "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tr", "ul",
)  # fmt: skip
_HIDDEN_STRINGS = (Comment, Declaration, Doctype, ProcessingInstruction)

_SPACES = re.compile(r"[ \t\f\v\xa0]+")
_WHITESPACE = re.compile(r"\s+")
_BLANK_RUNS = re.compile(r"\n{3,}")
_TAG = re.compile(r"<[^>]*>")
# A "<" with another "<" (or the end) before any ">" cannot start a tag.
_UNCLOSED_TAG_START = re.compile(r"<(?=[^<>]*(?:<|\Z))")
_COMMENT_START = re.compile(r"<(?=!--)")
_CDATA_START = re.compile(r"<(?=!\[\s*(?:cdata|temp|ignore|include|rcdata))", re.I)
_SECTION_START = re.compile(r"<(?=!\[)")
_CODE_START = re.compile(r"<(script|style)\b")

# "On Tue, 4 Jun 2024 at 09:12, Ana <ana@example.com> wrote:", in the
# languages our customers write in most.
_REPLY_HEADER_START = re.compile(r"^\s*(on|am|le|el|il|op|em)\s", re.I)
_REPLY_HEADER = re.compile(
    r"^\s*(on|am|le|el|il|op|em)\s.*"
    r"(wrote|schrieb|a écrit|escribió|ha scritto|schreef|escreveu)\s*:\s*$",
    re.I,
)
_MAX_REPLY_HEADER_CHARS = 300
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(original message|ursprüngliche nachricht|message d'origine)"
    r"\s*-{2,}\s*$",
    re.I,
)
_OUTLOOK_FROM = re.compile(r"^\s*\*?(from|von|de)\s*:\*?\s*\S", re.I)
_OUTLOOK_SENT = re.compile(r"^\s*\*?(sent|gesendet|envoyé)\s*:\*?\s*\S", re.I)
_MOBILE_FOOTER = re.compile(
    r"^\s*(sent from my \S.*|sent from (mail|outlook|yahoo mail) for \S.*"
    r"|get outlook for (ios|android))\s*$",
    re.I,
)
_SIGN_OFFS = frozenset(
    {
        "all the best", "best", "best regards", "best wishes", "br", "cheers",
        "cordialement", "kind regards", "many thanks", "mit freundlichen grüßen",
        "regards", "respectfully", "rgds", "saludos", "sincerely", "thank you",
        "thank you in advance", "thank you very much", "thanks", "thanks a lot",
        "thanks again", "thanks in advance", "thx", "warm regards",
        "with thanks", "yours sincerely", "yours truly",
    }
)  # fmt: skip


@dataclass(frozen=True)
class CleanedBody:
    """A body with history and signature removed, and how much each took."""

    text: str
    quoted_chars: int
    signature_chars: int


def clean_body(text: str, *, keep_history: bool = False) -> CleanedBody:
    """Strip quoted history (unless `keep_history`) and the signature.

    When stripping would leave nothing, the text is kept whole: the
    heuristics have misread that message, and routing on quoted text beats
    refusing the ticket for an empty body.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    without_history = text if keep_history else strip_quoted_history(text)
    without_signature = strip_signature(without_history)
    if not without_signature.strip():
        return CleanedBody(tidy(text), 0, 0)

    return CleanedBody(
        text=tidy(without_signature),
        quoted_chars=max(0, len(text) - len(without_history)),
        signature_chars=max(0, len(without_history) - len(without_signature)),
    )


def html_to_text(markup: str) -> str:
    """Readable text of an HTML body: blocks on their own lines, quotes as '>'.

    Scripts, styles and comments are dropped. Blockquote lines get a "> "
    prefix so that `clean_body` treats them like plain-text quotes. The tree is
    read in one pass without changing it: hostile markup nests deeply, and
    bs4's tree edits cost time in proportion to the depth or the width.
    """
    try:
        # bs4 warns when markup looks like a file name or XML; both are fine
        # here. catch_warnings is process-wide, so a thread parsing at the same
        # moment may see these two warnings silenced too, which is harmless.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
            warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
            soup = BeautifulSoup(_defuse(markup), "html.parser")
    except ParserRejectedMarkup:
        return _strip_tags_crudely(markup)
    return tidy(_TextWriter().write(soup))


def strip_quoted_history(text: str) -> str:
    """Remove '>' lines, reply headers and Outlook history blocks.

    Everything from an Outlook block ("-----Original Message-----", or a
    "From:" line followed by "Sent:") or a reply header ("On ... wrote:") to
    the end is history. The exception is a reply header followed by '>' lines:
    that is an inline reply, so only the header and the '>' lines go, and the
    answers written between them stay.
    """
    lines = text.split("\n")
    for index in range(len(lines)):
        if _ORIGINAL_MESSAGE.match(lines[index]) or _is_outlook_header(lines, index):
            lines = lines[:index]
            break
        header_end = _reply_header_end(lines, index)
        if header_end is None:
            continue
        following = next((line for line in lines[header_end + 1 :] if line.strip()), "")
        if following.lstrip().startswith(">"):
            del lines[index : header_end + 1]
        else:
            lines = lines[:index]
        break

    kept = [line for line in lines if not line.lstrip().startswith(">")]
    while kept and not kept[-1].strip("_-=* \t"):
        kept.pop()
    return "\n".join(kept)


def strip_signature(text: str) -> str:
    """Remove mobile footers, a "-- " signature and a closing sign-off block."""
    lines = [line for line in text.split("\n") if not _MOBILE_FOOTER.match(line)]
    lines = _cut_dash_signature(lines)
    lines = _cut_sign_off(lines)
    return "\n".join(lines).rstrip()


def tidy(text: str) -> str:
    """Lines trimmed, runs of blank lines collapsed to one."""
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


def _defuse(markup: str) -> str:
    """Escape the constructs that make Python's html.parser quadratic.

    Before CPython 3.11.13 (gh-135462), html.parser rescans to the end of the
    input for every tag, comment or marked section it cannot find the end of;
    100 kB of "<a " took over a minute. Such a "<" is escaped to "&lt;", which
    is also how a browser reads it: as text. Comments and marked sections
    after the last "-->", "]]>" or "]>" can have no end, and are escaped too.
    """
    markup = _UNCLOSED_TAG_START.sub("&lt;", markup)
    markup = _escape_after(markup, markup.rfind("-->"), _COMMENT_START)
    markup = _escape_after(markup, markup.rfind("]]>"), _CDATA_START)
    return _escape_after(markup, markup.rfind("]>"), _SECTION_START)


def _escape_after(markup: str, end: int, starts: re.Pattern[str]) -> str:
    """`markup` with every `starts` match after position `end` escaped."""
    cut = end + 1
    return markup[:cut] + starts.sub("&lt;", markup[cut:])


def _strip_tags_crudely(markup: str) -> str:
    """Fallback for markup html.parser refuses: drop code and tags, unescape."""
    markup = _defuse(markup)
    lowered = markup.lower()
    kept, position = [], 0
    # str.find from an advancing position keeps this linear; a regex with a
    # lazy ".*?" up to the closing tag is not when closing tags are missing.
    while code := _CODE_START.search(lowered, position):
        kept.append(markup[position : code.start()])
        closing = lowered.find(f"</{code.group(1)}", code.end())
        position = len(markup) if closing < 0 else closing
    kept.append(markup[position:])
    return tidy(html.unescape(_TAG.sub(" ", "".join(kept))))


@dataclass(frozen=True)
class _Leave:
    """Marks, on the walk's stack, the end of a tag's children."""

    name: str


class _TextWriter:
    """Walks a parsed HTML tree once, depth-first, collecting lines of text."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.chunks: list[str] = []
        self.is_quoted = False
        self.quote_depth = 0
        self.pre_depth = 0

    def write(self, soup: BeautifulSoup) -> str:
        # An explicit stack: the tree can be far deeper than Python's recursion.
        pending: list[PageElement | _Leave] = [soup]
        while pending:
            node = pending.pop()
            if isinstance(node, _Leave):
                self._leave(node.name)
            elif isinstance(node, Tag):
                if node.name in _DROPPED_TAGS:
                    continue
                self._enter(node.name)
                pending.append(_Leave(node.name))
                pending.extend(reversed(node.contents))
            elif isinstance(node, NavigableString) and not isinstance(
                node, _HIDDEN_STRINGS
            ):
                self._text(str(node))
        self._end_line()
        return "\n".join(self.lines)

    def _enter(self, name: str) -> None:
        if name == "br" or name in _BLOCK_TAGS:
            self._end_line()
        if name == "li":
            self.chunks.append("- ")
        elif name == "blockquote":
            self.quote_depth += 1
        elif name == "pre":
            self.pre_depth += 1

    def _leave(self, name: str) -> None:
        if name in _BLOCK_TAGS:
            self._end_line()
        if name == "blockquote":
            self.quote_depth -= 1
        elif name == "pre":
            self.pre_depth -= 1

    def _text(self, text: str) -> None:
        if not self.pre_depth:
            self._add(_WHITESPACE.sub(" ", text))
            return
        first, *rest = text.split("\n")
        self._add(first)
        for line in rest:
            self._end_line()
            self._add(line)

    def _add(self, text: str) -> None:
        if text.strip() and self.quote_depth:
            self.is_quoted = True
        self.chunks.append(text)

    def _end_line(self) -> None:
        line = "".join(self.chunks).strip()
        if line or not self.lines or self.lines[-1]:
            self.lines.append(f"> {line}" if self.is_quoted and line else line)
        self.chunks = []
        self.is_quoted = False


def _is_outlook_header(lines: list[str], index: int) -> bool:
    if not _OUTLOOK_FROM.match(lines[index]):
        return False
    following = lines[index + 1 : index + 4]
    return any(_OUTLOOK_SENT.match(line) for line in following)


def _reply_header_end(lines: list[str], index: int) -> int | None:
    """Index of the last line of a reply header starting at `index`, if any.

    Clients wrap long headers, so one may span two lines. A header must hold a
    digit or an '@' (a date or an address): "On startup the app wrote:" is a
    customer describing a problem, not a header.
    """
    if not _REPLY_HEADER_START.match(lines[index]):
        return None
    for end in (index, index + 1):
        if end >= len(lines):
            break
        header = " ".join(lines[index : end + 1])
        if len(header) > _MAX_REPLY_HEADER_CHARS:
            break
        has_date_or_address = "@" in header or any(c.isdigit() for c in header)
        if _REPLY_HEADER.match(header) and has_date_or_address:
            return end
    return None


def _cut_dash_signature(lines: list[str]) -> list[str]:
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].rstrip() != "--":
            continue
        after = [line for line in lines[index + 1 :] if line.strip()]
        is_standard = lines[index] == "-- "
        if is_standard or len(after) <= MAX_DASH_SIGNATURE_LINES:
            return lines[:index]
        break
    return lines


def _cut_sign_off(lines: list[str]) -> list[str]:
    filled = [index for index, line in enumerate(lines) if line.strip()]
    tail = filled[-(MAX_NAME_BLOCK_LINES + 1) :]
    for position, index in enumerate(tail):
        name_block = [lines[after] for after in tail[position + 1 :]]
        is_short = all(
            len(line.strip()) <= MAX_NAME_BLOCK_LINE_CHARS for line in name_block
        )
        if _is_sign_off(lines[index]) and is_short:
            return lines[:index]
    return lines


def _is_sign_off(line: str) -> bool:
    return line.strip().rstrip(",.!;:-– ").strip().lower() in _SIGN_OFFS
