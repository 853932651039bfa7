"""A cheap guess of a ticket's language, for drift profiles and windows."""

from __future__ import annotations

import threading

UNKNOWN_LANGUAGE = "unknown"
# The opening of a ticket tells its language as well as the whole text does,
# and langdetect's cost grows with the length it reads.
SAMPLE_CHARS = 160

_lock = threading.Lock()
_is_seeded = False


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text's language, or "unknown".

    Deterministic (langdetect is seeded once per process); about 3 ms per
    ticket on one core, so callers should run it off the request path.
    """
    sample = text[:SAMPLE_CHARS].strip()
    if not sample:
        return UNKNOWN_LANGUAGE
    _seed_once()
    from langdetect import detect
    from langdetect.lang_detect_exception import LangDetectException

    try:
        return str(detect(sample))
    except LangDetectException:  # no letters to go on: digits, symbols, a URL
        return UNKNOWN_LANGUAGE


def _seed_once() -> None:
    global _is_seeded
    if _is_seeded:
        return
    with _lock:
        from langdetect import DetectorFactory

        # Without a seed, langdetect's sampling gives short texts a different
        # answer on each call.
        DetectorFactory.seed = 0
        _is_seeded = True
