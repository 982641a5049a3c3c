"""Finding the tenant's account number in a request URL."""

from __future__ import annotations

import functools
import re
from urllib.parse import urlsplit

_LABEL = re.compile(r"\d{4}-\d{4}-\d{4}", re.ASCII)
_MAX_CACHED_LENGTH = 2048


def account_number_from_url(url: object) -> str | None:
    """The account number that is a whole label of the URL's host, else None. Never raises.

    >>> account_number_from_url("https://hr.3141-5926-5359.alpha.api.example.com/")
    '3141-5926-5359'
    >>> account_number_from_url("https://example.com/3141-5926-5359/") is None
    True

    Only the host counts: a number in the path, query string or user info would let a request
    choose its own tenant. Results are kept in a bounded in-process LRU.
    """
    if type(url) is not str:
        return None
    if len(url) > _MAX_CACHED_LENGTH:
        return _parse(url)
    return _cached_parse(url)


def _parse(url: str) -> str | None:
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    if not host:
        return None
    for label in host.rstrip(".").split("."):
        if _LABEL.fullmatch(label):
            return label
    return None


_cached_parse = functools.lru_cache(maxsize=10_000)(_parse)
