"""account_number_from_url never raises, and finds a number only as a whole host label."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.provisional import urls

from smarter_domain import account_number_from_url, is_account_number

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
