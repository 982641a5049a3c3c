"""Packaging conventions: the version, the changelog, and the extras (the core installs only
what every user needs; a missing extra is a one-line, typed error naming it)."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import smarter_domain as sd

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Block())
"""


def run_without(modules: str, code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter where ``modules`` cannot be imported (as if their extra
    were not installed)."""
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + code, modules],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_version_is_the_package_metadata_and_the_changelog_has_it() -> None:
    version = PYPROJECT["project"]["version"]
    assert sd.__version__ == importlib.metadata.version("smarter-domain") == version
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{version}] - " in changelog
    assert "## [Unreleased]" in changelog


def test_the_core_needs_no_server_driver_command_or_framework() -> None:
    core = " ".join(PYPROJECT["project"]["dependencies"]).lower()
    for optional in ("redis", "psycopg", "click", "rich", "factory", "flask", "fastapi"):
        assert optional not in core, optional
    extras = PYPROJECT["project"]["optional-dependencies"]
    for extra in ("postgres", "redis", "cli", "asyncio", "flask", "fastapi", "litestar"):
        assert extra in extras
    assert "testing" in extras and "all" in extras


def test_a_domain_without_the_optional_packages(tmp_path: Path) -> None:
    database = tmp_path / "core.db"
    code = f"""
import smarter_domain as sd
with sd.Domain("sqlite:///{database}") as domain:
    domain.migrate()
    admin = domain.bootstrap()
    assert domain.users.get_by_username("admin") == admin.user
    user = domain.apply(
        {{"apiVersion": "smarter.sh/v1", "kind": "User", "metadata": {{"name": "z"}}}},
        actor=admin,
    )
    assert domain.utils.get_cached_user_for_username("z") == user
for url, redis_url in (
    ("sqlite:///{database}", "redis://127.0.0.1:1/0"),
    ("postgresql://h/d", None),
):
    try:
        sd.Domain(url, redis_url).users.get(1)
    except sd.ConfigurationError as exc:
        print(exc)
print(sorted({{m.split(".")[0] for m in sys.modules}} & BLOCKED))
"""
    result = run_without("redis,hiredis,psycopg,click,rich,factory,greenlet", code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "pip install 'smarter-domain[redis]'" in lines[0]
    assert "pip install 'smarter-domain[postgres]'" in lines[1]
    assert lines[2] == "[]"  # none of them was even tried on the way


def test_the_pytest_plugin_and_an_async_domain_without_redis(tmp_path: Path) -> None:
    """The plugin is loaded by every pytest run of an environment with the library: it needs
    no server driver until a test asks for a server; an AsyncDomain without Redis needs no
    redis-py."""
    code = f"""
import asyncio
import smarter_domain.testing.pytest_plugin
import smarter_domain as sd
async def main():
    async with sd.AsyncDomain("sqlite:///{tmp_path / "b.db"}") as adomain:
        await adomain.migrate()
        print((await adomain.bootstrap()).user.username)
asyncio.run(main())
"""
    result = run_without("redis,hiredis,psycopg,factory", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["admin"]


def test_the_async_door_names_its_extra(tmp_path: Path) -> None:
    code = f"""
import smarter_domain as sd
try:
    sd.AsyncDomain("sqlite:///{tmp_path / "a.db"}")
except sd.ConfigurationError as exc:
    print(exc)
"""
    result = run_without("aiosqlite", code)
    assert result.returncode == 0, result.stderr
    assert "pip install 'smarter-domain[asyncio]'" in result.stdout


def test_the_command_without_its_extra_says_so_in_one_line() -> None:
    code = "sys.argv[1:] = ['--help']\nfrom smarter_domain.entrypoints import main\nmain()"
    result = run_without("click", code)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "smarter-domain: the command needs click: pip install 'smarter-domain[cli]'"
    ]
