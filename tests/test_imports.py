"""``import smarter_domain`` imports nothing of the library but the package itself: each
public name is imported from its module on first use (PEP 562). ``smarter_domain.Domain``
loads SQLAlchemy and the cache, the brokers load the manifest stack (pydantic, langcodes,
email-validator), and ``smarter-domain --help`` loads click and no more. Counted, not timed:
which modules a fresh interpreter has after some code (the time is in bench/imports.py)."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import smarter_domain

DATABASE_AND_CACHE = ("sqlalchemy", "redis", "dogpile", "msgspec", "blinker", "psycopg")
MANIFEST_STACK = ("pydantic", "langcodes", "email_validator", "pycountry")
COMMAND_LINE = ("click", "yaml", "rich", "alembic")
HEAVY = (*DATABASE_AND_CACHE, *MANIFEST_STACK, *COMMAND_LINE)


def run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def modules_after(code: str) -> list[str]:
    """The names of the modules a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport json as _j, sys as _s\nprint(_j.dumps(sorted(_s.modules)))"
    loaded: list[str] = json.loads(run(probe).strip().splitlines()[-1])
    return loaded


def heavy_after(code: str) -> list[str]:
    """Which of HEAVY (top-level packages) a fresh interpreter has loaded after ``code``."""
    loaded = set(modules_after(code))
    return [name for name in HEAVY if name in loaded]


def ours(modules: list[str]) -> list[str]:
    return [name for name in modules if name.partition(".")[0] == "smarter_domain"]


def test_importing_the_package_imports_only_the_package() -> None:
    bare = set(modules_after("pass"))
    after = modules_after("import smarter_domain")
    new = [name for name in after if name not in bare]
    assert ours(after) == ["smarter_domain"]
    assert heavy_after("import smarter_domain") == []
    # Beside the package itself, the standard library only (logging, for the NullHandler),
    # and not much of it.
    assert [
        name
        for name in new
        if name.partition(".")[0] not in sys.stdlib_module_names and name != "smarter_domain"
    ] == []
    assert len(new) <= 60, new


def test_each_name_loads_what_it_needs() -> None:
    assert heavy_after("import smarter_domain as sd; sd.SmarterError; sd.Account") == []
    first_use = heavy_after("import smarter_domain as sd; sd.Domain")
    assert "sqlalchemy" in first_use and "dogpile" in first_use
    assert "redis" not in first_use  # imported with a Redis tier only (the ``redis`` extra)
    assert not set(first_use) & {*MANIFEST_STACK, *COMMAND_LINE}
    utilities = "from smarter_domain import Domain, get_cached_user_for_username"
    assert not set(heavy_after(utilities)) & {*MANIFEST_STACK, *COMMAND_LINE}
    # The account utilities import the domain with their first call, not with their import.
    assert heavy_after("from smarter_domain import get_cached_user_for_username") == []
    assert "pydantic" in heavy_after("import smarter_domain as sd; sd.AccountBroker")


def test_the_command_line_loads_click_and_no_more() -> None:
    assert heavy_after("import smarter_domain.entrypoints.cli") == ["click"]
    help_only = (
        "import contextlib, io, smarter_domain.entrypoints.cli as cli\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    cli.main([{args}])\n"
    )
    assert heavy_after(help_only.format(args="'--help'")) == ["click"]
    for command in ("migrate", "get", "apply", "describe", "cache stats", "account-number"):
        args = ", ".join(repr(word) for word in [*command.split(), "--help"])
        assert heavy_after(help_only.format(args=args)) == ["click"], command
    # ``cli.Domain`` (which a test replaces) is there before any command imported it.
    assert run(
        "import smarter_domain, smarter_domain.entrypoints.cli as cli, sys\n"
        "assert 'sqlalchemy' not in sys.modules\n"
        "print(cli.Domain is smarter_domain.Domain)"
    ).split() == ["True"]


def test_the_command_line_runs_as_a_module() -> None:
    out = run(
        "import runpy, sys\n"
        "sys.argv = ['smarter-domain', '--help']\n"
        "try:\n"
        "    runpy.run_module('smarter_domain.entrypoints.cli', run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 0, stop.code\n"
    )
    assert "Usage:" in out and "account-number" in out


def test_every_public_name_resolves_in_a_fresh_interpreter() -> None:
    out = run(
        "import importlib, smarter_domain as sd\n"
        "for name in sd.__all__:\n"
        "    value = getattr(sd, name)\n"
        "    assert name in vars(sd), name  # kept: the next access is a plain lookup\n"
        "    if name in sd._MODULE_OF:\n"
        "        module = importlib.import_module(sd._MODULE_OF[name], 'smarter_domain')\n"
        "        assert getattr(module, name) is value, name\n"
        "namespace = {}\n"
        "exec('from smarter_domain import *', namespace)\n"
        "assert sorted(set(namespace) - {'__builtins__'}) == sorted(sd.__all__)\n"
        "assert set(sd.__all__) <= set(dir(sd))\n"
        "for name in sorted(sd._SUBMODULES):\n"
        "    assert getattr(sd, name).__name__ == f'smarter_domain.{name}', name\n"
        "print(len(sd.__all__))\n"
    )
    assert int(out) == len(smarter_domain.__all__)


def test_star_import_alone_in_a_fresh_interpreter() -> None:
    names = run(
        "from smarter_domain import *\nprint(sorted(k for k in dir() if not k.startswith('__')))\n"
    )
    assert names.strip() == repr(sorted(smarter_domain.__all__))


def test_unknown_names_are_attribute_errors() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import smarter_domain as sd; sd.NoSuchThing"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "AttributeError" in result.stderr
    # A folder of the wheel (data, no __init__) is not imported as a namespace package.
    assert run("import smarter_domain as sd\nprint(hasattr(sd, '_migrations'))").split() == [
        "False"
    ]


def test_the_lazy_tables_agree() -> None:
    """``__all__``, the name -> module map, the list of submodules and the imports that
    mypy and IDEs read (under ``if TYPE_CHECKING:``) say the same thing."""
    package = smarter_domain
    listed = {info.name for info in pkgutil.iter_modules(package.__path__)}
    assert {name for name in listed if not name.startswith("_")} == package._SUBMODULES
    module_of = dict(package._MODULE_OF)
    assert set(package.__all__) == set(module_of) | {"schema"}
    assert "schema" in package._SUBMODULES

    tree = ast.parse(Path(package.__file__ or "").read_text())
    [block] = [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    ]
    typed: dict[str, str] = {}
    for node in block.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            for alias in node.names:
                # ``from . import schema``: a submodule; ``from .x import y``: y from .x
                typed[alias.name] = f".{node.module}" if node.module else f".{alias.name}"
    assert typed.pop("schema") == ".schema"
    assert typed == module_of
