"""The README's doctest examples run as written."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

import smarter_domain as sd

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("SMARTER_DATABASE_URL", "SMARTER_REDIS_URL", "SMARTER_CACHE_TTL"):
        monkeypatch.delenv(name, raising=False)
    previous = sd.set_domain(None)
    try:
        result = doctest.testfile(
            str(README), module_relative=False, optionflags=doctest.ELLIPSIS, verbose=False
        )
    finally:
        sd.get_domain().close()
        sd.set_domain(previous)
    assert result.attempted >= 15
    assert result.failed == 0
