"""account_number_from_url never raises, and finds a number only as a whole host label: a
label of the host a browser (the WHATWG URL standard, here ada-url) sees."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from ada_url import URL
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.provisional import urls

import smarter_domain as sd
from smarter_domain import Domain, account_number_from_url, api, is_account_number
from smarter_domain.model import urls as urls_module

numbers = st.from_regex(r"\A[0-9]{4}-[0-9]{4}-[0-9]{4}\Z")
labels = st.from_regex(r"\A[a-z][a-z0-9-]{0,10}[a-z]\Z")


@settings(max_examples=500)
@given(st.text())
def test_never_raises_on_any_text(text: str) -> None:
    result = account_number_from_url(text)
    assert result is None or is_account_number(result)


@settings(max_examples=300)
@given(urls())
def test_never_raises_on_any_url(url: str) -> None:
    result = account_number_from_url(url)
    assert result is None or result in url.lower()


@settings(max_examples=300)
@given(
    st.sampled_from(["http", "https", "HTTPS", "wss"]),
    st.lists(labels, max_size=3),
    numbers,
    st.lists(labels, min_size=1, max_size=3),
    st.one_of(st.none(), st.integers(1, 65535)),
    st.booleans(),
    st.text(alphabet="abc/?=&#-0123456789", max_size=30),
)
def test_finds_the_number_as_a_host_label(
    scheme: str,
    before: list[str],
    number: str,
    after: list[str],
    port: int | None,
    trailing_dot: bool,
    rest: str,
) -> None:
    host = ".".join([*before, number, *after]) + ("." if trailing_dot else "")
    url = f"{scheme}://{host}{f':{port}' if port else ''}/{rest}"
    assert account_number_from_url(url) == number


@settings(max_examples=300)
@given(st.lists(labels, min_size=1, max_size=4), numbers, st.sampled_from(["/", "/?a=", "/#"]))
def test_ignores_the_number_outside_the_host(hosts: list[str], number: str, where: str) -> None:
    url = f"https://{'.'.join(hosts)}.com{where}{number}"
    assert account_number_from_url(url) is None


# Against a WHATWG parser --------------------------------------------------------------------

NUMBER = "3141-5926-5359"
HOSTILE = [
    *["\\", "/", "//", "@", ":", "%", "%2e", "%33", "%40", "%5c", "%2f", "?", "#", ".", ".."],
    *["\t", "\n", "\r", " ", "\x00", "\x1f", "\x7f", "\x0b", "\u3000", "\ufeff"],
    *["[", "]", "::1", "0x", "0x1f", "1", "09", "80", "99999", "65536", "0", "-"],
    *["example", "com", "A", "xn--", "xn--bcher-kva", "xn--a", "_", "!", "ß", "ﬀ", "I"],
    *["\u3002", "\uff0e", "\uff61", "\u200d", "\u05d0", "\u0661", "\ud800", "\udfff"],
    *[
        NUMBER,
        "1234-5678-9012",
        "\uff11\uff12\uff13\uff14-\uff15\uff16\uff17\uff18-\uff19\uff10\uff11\uff12",
        "\u0663\u0661\u0664\u0661-5926-5359",
    ],
    *["3141\uff0d5926\uff0d5359", "3141-5926-5359\u3002", "%33141-5926-5359", "03141-5926-5359"],
]
SCHEMES = [
    *["https:", "http:", "HTTPS:", "ws:", "wss:", "ftp:", "file:", "foo:", "mailto:", ""],
    *["ht\ttps:", " https:", "\x00https:", "https\n:", "h:", "1http:", "sftp:", "https;"],
]
SLASHES = ["", "/", "//", "\\\\", "/\\", "\\/", "///", "\t//", "/\n/"]

sparse_pieces = st.one_of(st.just(""), st.lists(st.sampled_from(HOSTILE), max_size=4).map("".join))


def _browser_hostname(url: str) -> str | None:
    """The hostname ada-url (WHATWG) gives ``url``, or None when it does not parse. Lone
    surrogates become U+FFFD first, as a browser's USVString conversion does."""
    scalar = url.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    try:
        return str(URL(scalar).hostname)
    except ValueError:
        return None


def _assert_seen_by_a_browser(url: str) -> None:
    found = account_number_from_url(url)
    if found is None:
        return
    assert is_account_number(found)
    hostname = _browser_hostname(url)
    assert hostname is not None, f"{url!r}: {found} from a URL a browser refuses"
    assert found in hostname.split("."), f"{url!r}: {found} is not a label of {hostname!r}"


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(st.sampled_from(["", " ", "\t", "\x00", "\x1f\n"]), max_size=2).map("".join),
    st.one_of(st.sampled_from(SCHEMES[:7]), st.sampled_from(SCHEMES)),
    st.sampled_from(SLASHES),
    sparse_pieces,
    st.lists(st.sampled_from(["example", NUMBER, "1234-5678-9012", "a", "x-y", ""]), max_size=4),
    sparse_pieces,
    st.sampled_from(["", ":", ":80", ":0080", ":65536", ":x", ":" + "0" * 40 + "1"]),
    sparse_pieces,
    st.sampled_from(["", " ", "\t", "\x00", "\x1f"]),
)
@example("", "https:", "//", "evil.example\\@", [NUMBER, "example", "com"], "", "", "/", "")
@example("", "foo:", "//", "evil\\@", [NUMBER, "example"], "", "", "/", "")
@example("", "https:", "//", "", [NUMBER], "", "", "\\@evil.example/", "")
@example("", "https:", "//", "", [NUMBER, "1"], "", "", "", "")
def test_a_number_is_always_a_label_of_the_host_a_browser_sees(
    lead: str,
    scheme: str,
    slashes: str,
    before: str,
    labels: list[str],
    after: str,
    port: str,
    rest: str,
    trail: str,
) -> None:
    url = f"{lead}{scheme}{slashes}{before}{'.'.join(labels)}{after}{port}{rest}{trail}"
    _assert_seen_by_a_browser(url)


BASES = [
    f"https://hr.{NUMBER}.example.com:8443/a/b?c=d#e",
    f"http://u:p@{NUMBER}.example.com/",
    f"wss://{NUMBER}./",
    f"file://{NUMBER}.example.com/x",
    f"foo://{NUMBER}.example/",
]


@settings(max_examples=3000, deadline=None)
@given(
    st.sampled_from(BASES),
    st.lists(
        st.tuples(st.integers(0, 60), st.sampled_from([*HOSTILE, *SLASHES, "https:"])),
        max_size=3,
    ),
)
def test_a_number_in_a_mutated_url_is_a_label_of_the_browser_host(
    base: str, insertions: list[tuple[int, str]]
) -> None:
    url = base
    for position, piece in insertions:
        url = url[:position] + piece + url[position:]
    _assert_seen_by_a_browser(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example\\@3141-5926-5359.example.com/",  # the browser's host: evil.example
        "https:\\\\evil.example\\@3141-5926-5359.example.com/",
        "https://3141-5926-5359.example.com:65536/",  # an invalid port fails the URL
        "https://3141-5926-5359.example.com:8o/",
        "https://3141-5926-5359.1/",  # ends in a number: IPv4, which fails
        "https://3141-5926-5359.0x1f./",
        "https://[3141-5926-5359]/",
        "https://user@/3141-5926-5359.example.com",
        "file://user@3141-5926-5359.example.com/",
        "mailto:admin@3141-5926-5359.example.com",
        "https://3141-5926-5359.example.com\x00evil/",
    ],
)
def test_backslashes_and_other_odd_urls_give_no_number(url: str) -> None:
    hostname = _browser_hostname(url)
    assert hostname is None or NUMBER not in hostname.split(".")  # a browser sees none
    assert account_number_from_url(url) is None
    assert account_number_from_url(url, invalidate=True) is None


@pytest.mark.parametrize(
    "url", ["foo://evil\\@3141-5926-5359.example.com/", "foo://a\\b.3141-5926-5359.example/"]
)
def test_a_backslash_in_the_authority_of_other_schemes_gives_no_number(url: str) -> None:
    """Browsers differ on these (a backslash is a path separator only for special schemes):
    no number rather than a guess."""
    assert account_number_from_url(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "\x00\x1f https://hr.3141-5926-5359.example.com/ \x00",  # C0 and spaces stripped
        "ht\ttps://hr.3141-59\n26-5359.exa\rmple.com/",  # tabs and newlines removed
        "https:3141-5926-5359.example.com",  # slashes are optional for special schemes
        "https:\\\\3141-5926-5359.example.com\\path",
        "https://a@b:c@3141-5926-5359.example.com:0443/",  # the host follows the last @
        "wss://3141-5926-5359.example.com./",
        "file://3141-5926-5359.example.com/etc",
        "foo://3141-5926-5359.example.com/",
    ],
)
def test_finds_the_number_where_a_browser_does(url: str) -> None:
    assert account_number_from_url(url) == NUMBER
    hostname = _browser_hostname(url)
    assert hostname is not None and NUMBER in hostname.split(".")


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.binary(),
        st.lists(st.text(), max_size=3),
        st.dictionaries(st.text(), st.text(), max_size=3),
        st.builds(object),
        st.text().map(lambda text: type("S", (str,), {})(text)),
    ),
    st.one_of(st.booleans(), st.none(), st.integers(), st.text()),
)
def test_never_raises_on_any_object(value: Any, invalidate: Any) -> None:
    assert account_number_from_url(value) is None
    assert account_number_from_url(value, invalidate=invalidate) is None


class _BadBool:
    def __bool__(self) -> bool:
        raise RuntimeError("no truth value")


def test_never_raises_on_huge_or_broken_text() -> None:
    host = "https://hr.3141-5926-5359.example.com"
    assert account_number_from_url(host + "/" + "\ud800\x00" * 500_000) == NUMBER
    assert account_number_from_url("https://" + "a." * 500_000 + NUMBER) == NUMBER
    assert account_number_from_url(host + ":" + "9" * 100_000) is None
    assert account_number_from_url(host + ":" + "0" * 100_000 + "80") == NUMBER
    assert account_number_from_url("\ud800https://3141-5926-5359.com") is None
    assert account_number_from_url(host, invalidate=_BadBool()) == NUMBER  # type: ignore[arg-type]


def test_invalidate_drops_the_entry_and_parses_again(domain: Domain) -> None:
    url = "https://hr.3141-5926-5359.example.com/invalidate"
    assert account_number_from_url(url) == NUMBER
    urls_module._cache[url] = "0000-0000-0000"  # a stale entry
    assert account_number_from_url(url) == "0000-0000-0000"  # served from the cache
    for function in (
        account_number_from_url,
        api.account_number_from_url,
        sd.account_number_from_url,
        domain.utils.account_number_from_url,
    ):
        urls_module._cache[url] = "0000-0000-0000"
        assert function(url, invalidate=True) == NUMBER
        assert account_number_from_url(url) == NUMBER
        urls_module._cache[url] = "0000-0000-0000"
        assert function(url=url, invalidate=True) == NUMBER
        assert function(url=url) == NUMBER
        parameter = inspect.signature(function).parameters["invalidate"]
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
        assert parameter.default is False
        with pytest.raises(TypeError):
            function(url, True)  # type: ignore[misc]


def test_the_in_process_cache_is_bounded() -> None:
    for index in range(urls_module._CACHE_SIZE + 100):
        account_number_from_url(f"https://h{index}.3141-5926-5359.example.com/")
    assert len(urls_module._cache) <= urls_module._CACHE_SIZE
