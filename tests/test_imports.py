"""``import smarter_domain`` imports what every process needs, not what only applying a
manifest needs (pydantic, langcodes, email-validator), nor Alembic or click. Counted, not
timed: which modules a fresh interpreter has after the import (the time is in the bench)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pydantic", "langcodes", "email_validator", "alembic", "click")


def modules_after(code: str) -> list[str]:
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_package_leaves_the_manifest_stack_unloaded() -> None:
    assert modules_after("import smarter_domain") == []
    assert modules_after("from smarter_domain import Domain, get_cached_user_for_username") == []


def test_the_command_line_loads_the_manifest_stack_only_for_commands_that_need_it() -> None:
    assert modules_after("import smarter_domain.cli") == ["click"]
    help_only = (
        "import contextlib, io, smarter_domain.cli as cli\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    cli.main(['--help'])\n"
    )
    assert modules_after(help_only) == ["click"]


def test_the_lazy_names_still_work() -> None:
    loaded = modules_after(
        "import smarter_domain as sd\n"
        "assert sd.AccountBroker.kind == 'Account'\n"
        "assert callable(sd.load_manifests) and callable(sd.apply_manifests)\n"
        "from smarter_domain import UserBroker, UserProfileBroker\n"
        "from smarter_domain import *\n"
    )
    assert "pydantic" in loaded
    result = subprocess.run(
        [sys.executable, "-c", "import smarter_domain as sd; sd.NoSuchThing"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "AttributeError" in result.stderr
