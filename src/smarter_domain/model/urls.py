"""Finding the tenant's account number in a request URL.

The host is found the way a browser finds it (the WHATWG URL standard), not the way
``urllib.parse`` does: the two disagree on backslashes, on leading control characters and on
what a scheme without ``//`` means, and the number that picks a tenant must be the one in the
host a browser sent the request to. Where the standard would transform the host (percent
decoding, IDNA mapping, IPv4 and IPv6 forms) the URL is odd and no number is returned: a
missed number is acceptable, a number a browser would not see in the host never is.
"""

from __future__ import annotations

import re

from .lru import BoundedLRU

_LABEL = re.compile(r"[0-9]{4}-[0-9]{4}-[0-9]{4}", re.ASCII)
_MAX_CACHED_LENGTH = 2048
_CACHE_SIZE = 10_000

# WHATWG: leading and trailing "C0 control or space" are stripped; tab, LF and CR are removed
# from anywhere in the input.
_C0_CONTROL_OR_SPACE = "".join(map(chr, range(0x21)))
_TAB_OR_NEWLINE = re.compile(r"[\t\n\r]")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):", re.ASCII)
_SPECIAL = frozenset({"http", "https", "ws", "wss", "ftp"})  # and "file", handled apart
# The authority ends at the first of these (special schemes: a backslash too).
_SPECIAL_AUTHORITY = re.compile(r"[^/\\?#]*", re.ASCII)
_OTHER_AUTHORITY = re.compile(r"[^/?#]*", re.ASCII)
# The host characters taken as they are: an RFC 3986 reg-name without percent-encoding. Any
# other character is something the standard would decode, map or refuse.
_PLAIN_HOST = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=]+", re.ASCII)
_PORT = re.compile(r"[0-9]*", re.ASCII)
# The standard's "ends in a number" check: such a host is parsed as IPv4 (or fails).
_IPV4_NUMBER = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*", re.ASCII)

_MISS = object()
_cache = BoundedLRU(_CACHE_SIZE)


def account_number_from_url(url: object, *, invalidate: bool = False) -> str | None:
    """The account number that is a whole label of the URL's host, else None. Never raises.

    >>> account_number_from_url("https://hr.3141-5926-5359.alpha.api.example.com/")
    '3141-5926-5359'
    >>> account_number_from_url("https://example.com/3141-5926-5359/") is None
    True
    >>> account_number_from_url("https://evil.example\\\\@3141-5926-5359.example.com/") is None
    True

    Only the host counts: a number in the path, query string or user info would let a request
    choose its own tenant. The host is the one a browser (the WHATWG URL standard) sees; a URL
    whose host the standard would decode or map (percent-encoding, non-ASCII, IP addresses)
    gives None. Results are kept in a bounded in-process LRU; ``invalidate=True`` drops this
    URL's entry and parses it again.
    """
    if type(url) is not str:
        return None
    if len(url) > _MAX_CACHED_LENGTH:
        return _parse(url)
    if invalidate is not False and _truthy(invalidate):
        _cache.pop(url)
    else:
        found = _cache.get(url, _MISS)
        if found is not _MISS:
            return found  # type: ignore[no-any-return]
    result = _parse(url)
    _cache[url] = result
    return result


def _truthy(value: object) -> bool:
    try:
        return bool(value)
    except Exception:  # an object whose __bool__ raises: parse afresh, the safe reading
        return True


def _parse(url: str) -> str | None:
    host = _host(url)
    if host is None:
        return None
    for label in host.split("."):
        if _LABEL.fullmatch(label):
            return label
    return None


def _host(url: str) -> str | None:
    """The host a WHATWG parser gives ``url`` when it is plain ASCII it keeps as it is, else
    None (no host, a parse failure, or a host the parser would transform)."""
    url = url.strip(_C0_CONTROL_OR_SPACE)
    if "\t" in url or "\n" in url or "\r" in url:
        url = _TAB_OR_NEWLINE.sub("", url)
    scheme_match = _SCHEME.match(url)
    if scheme_match is None:
        return None  # no scheme and no base URL: a failure
    scheme = scheme_match.group(1).lower()
    rest = url[scheme_match.end() :]
    if scheme == "file":
        return _file_host(rest)
    special = scheme in _SPECIAL
    if special:
        # Any run of slashes and backslashes (even none) comes before the authority.
        start = len(rest) - len(rest.lstrip("/\\"))
        authority = _SPECIAL_AUTHORITY.match(rest, start).group()  # type: ignore[union-attr]
    elif rest.startswith("//"):
        authority = _OTHER_AUTHORITY.match(rest, 2).group()  # type: ignore[union-attr]
        if "\\" in authority:
            return None  # the standard refuses it in an opaque host
    else:
        return None  # an opaque path: no host at all
    host, colon, port = authority.rpartition("@")[2].partition(":")
    if colon and not _valid_port(port):
        return None  # an invalid port fails the whole URL
    if _PLAIN_HOST.fullmatch(host) is None:
        return None
    if special and not _plain_domain(host):
        return None
    return host


def _valid_port(port: str) -> bool:
    if _PORT.fullmatch(port) is None:
        return False
    digits = port.lstrip("0")  # int() of a huge digit string would raise
    return len(digits) <= 5 and int(digits or "0") <= 65535


def _file_host(rest: str) -> str | None:
    # "file:" then two slashes or backslashes, then a host up to the next one (no user info,
    # no port: an "@" or ":" there fails the parse).
    if len(rest) < 2 or rest[0] not in "/\\" or rest[1] not in "/\\":
        return None
    host = _SPECIAL_AUTHORITY.match(rest, 2).group()  # type: ignore[union-attr]
    if _PLAIN_HOST.fullmatch(host) is None or not _plain_domain(host):
        return None
    return host


def _plain_domain(host: str) -> bool:
    """Whether the standard's host parser keeps this ASCII host as it is (lowercased): not an
    IPv4 address (or a failed one), and no punycode label it would have to validate."""
    labels = host.split(".")
    if labels[-1] == "" and len(labels) > 1:
        labels.pop()
    if _IPV4_NUMBER.fullmatch(labels[-1]):
        return False
    return not any(label[:4].lower() == "xn--" for label in labels)
