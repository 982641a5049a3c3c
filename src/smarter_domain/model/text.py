"""What text the library accepts: anything it stores, keys or looks up must be storable on
every backend. PostgreSQL refuses NUL characters in text, and a lone surrogate (a Python
``str`` that is not valid Unicode) cannot be encoded as UTF-8 for a driver or a Redis key."""

from __future__ import annotations

MAX_TEXT = 1 << 20
"""The most characters of YAML text, or of all the strings of a mapping, taken at once (a
manifest's limit; here, without the manifest models, so the CLI can size its reads)."""


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored, keyed or looked up, or None when it can."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    return None
