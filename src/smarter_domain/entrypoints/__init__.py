"""Ways into the library from outside Python code: the ``smarter-domain`` command."""

from __future__ import annotations

import sys


def main() -> None:
    """The ``smarter-domain`` command (``cli.main``), or one line saying what to install when
    the ``cli`` extra (click, rich) is missing."""
    try:
        from .cli import main as command
    except ImportError as exc:
        if exc.name not in ("click", "rich") and not str(exc.name or "").startswith("rich."):
            raise
        print(
            f"smarter-domain: the command needs {exc.name}: pip install 'smarter-domain[cli]'",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    command()
