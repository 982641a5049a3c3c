"""Account numbers: ``NNNN-NNNN-NNNN``, generated at random, never changed once given."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

from .errors import ValidationError

ACCOUNT_NUMBER_PATTERN = r"\d{4}-\d{4}-\d{4}"
_FULL = re.compile(rf"^{ACCOUNT_NUMBER_PATTERN}$", re.ASCII)


def is_account_number(value: object) -> bool:
    return isinstance(value, str) and _FULL.fullmatch(value) is not None


def validate_account_number(value: object) -> str:
    """Return ``value`` if it is a well-formed account number, else raise ValidationError."""
    if not is_account_number(value):
        raise ValidationError(
            "invalid account number",
            {"account_number": f"{value!r} does not match NNNN-NNNN-NNNN"},
        )
    assert isinstance(value, str)
    return value


def random_account_number() -> str:
    digits = f"{secrets.randbelow(10**12):012d}"
    return f"{digits[0:4]}-{digits[4:8]}-{digits[8:12]}"


def generate_account_number(is_taken: Callable[[str], bool], attempts: int = 32) -> str:
    """A random account number that ``is_taken`` says is free.

    The database's unique index remains the real guard against a concurrent writer picking
    the same number; this only makes a collision vanishingly rare.
    """
    for _ in range(attempts):
        candidate = random_account_number()
        if not is_taken(candidate):
            return candidate
    raise ValidationError(
        "could not generate a free account number",
        {"account_number": f"{attempts} random candidates were all taken"},
    )
