"""The documentation's doctest examples run as written, and its relative links resolve.

The doctests are in the README and the pages of docs/ (mkdocs.yml's ``nav``): they run in the
order a reader meets them, in one namespace, as one session (a page may use what an earlier
one set up, as ``domain`` and ``sd``).
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest
import yaml

import smarter_domain as sd

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

EXAMPLES_BEFORE_THE_DOCS_SITE = 23
"""The README's doctest examples when it held them all: none may be lost in the move."""


def pages() -> list[Path]:
    """The README, then the docs pages in the site's order (any page left out of ``nav``
    after, by name)."""
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    ordered = [DOCS / name for entry in nav for name in entry.values()]
    rest = sorted(set(DOCS.glob("*.md")) - set(ordered))
    return [README, *ordered, *rest]


def test_the_doctests_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("SMARTER_DATABASE_URL", "SMARTER_REDIS_URL", "SMARTER_CACHE_TTL"):
        monkeypatch.delenv(name, raising=False)
    # One globals dict for every page. (``doctest.testfile`` copies the globs it is given and
    # clears them afterwards, so it cannot share them: the parser and runner are used directly.)
    shared: dict[str, object] = {"__name__": "__main__"}
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS, verbose=False)
    run = []
    previous = sd.set_domain(None)
    try:
        for page in pages():
            text = page.read_text(encoding="utf-8")
            test = parser.get_doctest(text, shared, page.name, str(page), 0)
            if test.examples:
                run.append(page.name)
                runner.run(test, clear_globs=False)
    finally:
        sd.get_domain().close()
        sd.set_domain(previous)
    failed, attempted = runner.summarize(verbose=False)
    assert run, "no page has a doctest"
    assert attempted >= EXAMPLES_BEFORE_THE_DOCS_SITE, run
    assert failed == 0


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)[^)]*\)")  # [text](target), ![alt](image)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE = re.compile(r"`[^`\n]*`")


def relative_links(page: Path) -> list[str]:
    """The page's links and images that name a file (not a web address, not an anchor of the
    page itself), code left out."""
    text = CODE.sub("", FENCE.sub("", page.read_text(encoding="utf-8")))
    return [
        target
        for target in LINK.findall(text)
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)
        and not target.startswith("#")
    ]


@pytest.mark.parametrize("page", [README, *sorted(DOCS.glob("*.md"))], ids=lambda page: page.name)
def test_relative_links_name_files_that_exist(page: Path) -> None:
    missing = [
        target
        for target in relative_links(page)
        if not (page.parent / target.split("#", 1)[0]).exists()
    ]
    assert not missing, f"{page.name} links to files that do not exist: {missing}"


def test_the_link_check_sees_links() -> None:
    assert "docs/caching.md" in relative_links(README)
    assert "CHANGELOG.md" in relative_links(README)
    assert "assets/bench/latency.svg" in relative_links(DOCS / "benchmarks.md")
