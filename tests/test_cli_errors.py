"""The CLI prints one line for every error, never a traceback, and exits 1 (usage errors: 2);
read commands never create a SQLite file. Through subprocess, on SQLite and on PostgreSQL +
Redis."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .builders import cli_env

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RUN_CLI = "from smarter_domain.entrypoints.cli import main; main(prog_name='smarter-domain')"
CLOSED_PORT_URL = "postgresql://u@127.0.0.1:1/x"

# Every command that reads or writes the database (``cache stats`` and ``cache top`` do not:
# they read the processes' heartbeats in Redis).
READ_COMMANDS: list[tuple[str, ...]] = [
    ("bootstrap",),
    ("get", "users"),
    ("get", "accounts", "-o", "json"),
    ("describe", "account", "4242-4242-4242"),
    ("delete", "user", "jdoe"),
    ("apply", "-f", str(EXAMPLES / "account.yaml")),
    ("cache", "invalidate", "user", "admin"),
    ("--as", "jdoe", "get", "profiles"),
]
# Every command but migrate, setup (no command) and demo: none may create a SQLite file.
NON_CREATING_COMMANDS = READ_COMMANDS


class Tool:
    """The command in a subprocess, with only the SMARTER_* settings given here (and
    PYTHONPATH, so a pristine checkout can be tested with the same file)."""

    def __init__(
        self, cwd: Path, database_url: str | None, redis_url: str | None = None, **env: str
    ) -> None:
        self.cwd = cwd
        self.env = cli_env(database_url, redis_url, **env)

    def run(
        self, *args: str, stdin: bytes | None = None, code: str = RUN_CLI
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            timeout=120,
            input=stdin,
        )

    def ok(self, *args: str, stdin: bytes | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, result.stderr.decode(errors="backslashreplace")
        return result.stdout.decode()

    def fails(self, *args: str, stdin: bytes | None = None, code: str = RUN_CLI) -> str:
        """Exit 1, exactly one line on stderr, no traceback anywhere: that line."""
        result = self.run(*args, stdin=stdin, code=code)
        out = result.stdout.decode(errors="backslashreplace")
        err = result.stderr.decode(errors="backslashreplace")
        assert "Traceback" not in out + err, err
        assert result.returncode == 1, (args, out, err)
        lines = err.splitlines()
        assert len(lines) == 1, (args, err)
        assert lines[0].startswith("Error: "), lines
        return lines[0]


def files(directory: Path) -> set[Path]:
    return set(directory.rglob("*"))


@pytest.fixture
def tool(smarter_database_url: str, smarter_stack_redis_url: str | None, tmp_path: Path) -> Tool:
    work = tmp_path / "work"
    work.mkdir()
    result = Tool(work, smarter_database_url, smarter_stack_redis_url)
    result.ok("bootstrap")
    return result


# -- manifest files that are not UTF-8 ------------------------------------------------------

ALIAS_BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]\n"
        for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
    )
).encode()

NOT_UTF8 = [
    b"apiVersion: smarter.sh/v1\nkind: Account\nmetadata: {name: acme, description: caf\xe9}\n",
    b"kind: Acc\xffount\n",
    b"\xff\xfek\x00i\x00n\x00d\x00",  # UTF-16
    b"kind: \xed\xa0\x80\n",  # an encoded surrogate
    b"kind: \xc0\xaf\n",  # an overlong form
]


@pytest.mark.parametrize("data", NOT_UTF8, ids=["latin-1", "0xff", "utf-16", "surrogate", "long"])
def test_a_manifest_that_is_not_utf8_is_one_line(tool: Tool, data: bytes) -> None:
    path = tool.cwd / "bad.yaml"
    path.write_bytes(data)
    line = tool.fails("apply", "-f", str(path))
    assert "not UTF-8" in line and "bad.yaml" in line
    line = tool.fails("apply", "-f", "-", stdin=data)
    assert "not UTF-8" in line and "stdin" in line
    assert "acme" not in tool.ok("get", "accounts")


def test_a_utf8_manifest_with_a_byte_order_mark_applies(tool: Tool) -> None:
    data = b"\xef\xbb\xbf" + (EXAMPLES / "account.yaml").read_bytes()
    path = tool.cwd / "bom.yaml"
    path.write_bytes(data)
    assert "applied" in tool.ok("apply", "-f", str(path))
    assert "applied" in tool.ok("apply", "-f", "-", stdin=data)


@pytest.mark.parametrize(
    "data",
    [
        b"apiVersion: smarter.sh/v1\nkind: Account\nmetadata: {name: acme, description: a\x00b}",
        b'apiVersion: smarter.sh/v1\nkind: Account\nmetadata: {name: acme, description: "a\\0"}',
        b'apiVersion: smarter.sh/v1\nkind: [Account]\nmetadata: {name: "\\ud800"}',
        b"[" * 100_000,
        ALIAS_BOMB,
    ],
    ids=["raw-nul", "escaped-nul", "kind-list", "deep", "alias-bomb"],
)
def test_hostile_manifests_are_one_line(tool: Tool, data: bytes) -> None:
    tool.fails("apply", "-f", "-", stdin=data)
    assert len(yaml.safe_load(tool.ok("get", "accounts", "-o", "yaml"))) == 1


def test_a_manifest_path_that_is_a_directory_is_one_line(tool: Tool) -> None:
    assert "cannot read" in tool.fails("apply", "-f", str(tool.cwd))


# -- databases that are missing, not migrated, or unreachable ------------------------------


@pytest.mark.parametrize("command", NON_CREATING_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_database_that_is_not_migrated(
    smarter_empty_database_url: str, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """SQLite: the file does not exist, and is not created; PostgreSQL: no tables."""
    work = tmp_path / "work"
    work.mkdir()
    before = files(tmp_path)
    line = Tool(work, smarter_empty_database_url).fails(*command)
    assert "smarter-domain migrate" in line
    assert files(tmp_path) == before
    if smarter_empty_database_url.startswith("sqlite"):
        assert "no database at" in line


def test_the_default_sqlite_file_is_not_created_by_read_commands(tmp_path: Path) -> None:
    tool = Tool(tmp_path, None)
    for command in NON_CREATING_COMMANDS:
        line = tool.fails(*command)
        assert "no database at smarter_domain.db" in line
        assert "smarter-domain migrate" in line
        assert files(tmp_path) == set()
    line = tool.fails("--database-url", f"sqlite:///{tmp_path}/no/such/dir/x.db", "get", "users")
    assert "no database at" in line
    assert files(tmp_path) == set()


def test_only_migrate_setup_and_demo_create_the_sqlite_file(tmp_path: Path) -> None:
    for command in (["migrate"], [], ["demo"]):
        work = tmp_path / (command[0] if command else "setup")
        work.mkdir()
        Tool(work, None).ok(*command)
        assert (work / "smarter_domain.db").exists()


def test_an_empty_sqlite_file_says_to_migrate(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    tool = Tool(tmp_path, f"sqlite:///{path}")
    for command in READ_COMMANDS:
        assert "smarter-domain migrate" in tool.fails(*command)
    assert path.stat().st_size == 0
    assert files(tmp_path) == {path}


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("not a database\n" * 100)
    Tool(tmp_path, f"sqlite:///{path}").fails("get", "users")
    assert path.read_text() == "not a database\n" * 100


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    tool = Tool(tmp_path, CLOSED_PORT_URL)
    for command in [*READ_COMMANDS, ("migrate",), ()]:
        line = tool.fails(*command)
        assert "127.0.0.1" in line or "refused" in line.lower(), line
    assert files(tmp_path) == set()


@pytest.mark.parametrize(
    "url",
    ["mysql://127.0.0.1/x", "not a url", "sqlite://", "postgresql://u@[::1/x"],
)
def test_an_unusable_database_url_is_one_line(tmp_path: Path, url: str) -> None:
    Tool(tmp_path, url).fails("get", "users")
    assert files(tmp_path) == set()


# -- Redis, settings, and anything unexpected ----------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["notaurl", "redis://x:99999999/", "http://127.0.0.1/", "redis+cluster://127.0.0.1:1"],
)
def test_a_bad_redis_url_is_one_line(smarter_database_url: str, tmp_path: Path, url: str) -> None:
    tool = Tool(tmp_path, smarter_database_url, url)
    line = tool.fails("get", "users")
    assert "Redis" in line


def test_a_bad_setting_is_one_line(tmp_path: Path) -> None:
    line = Tool(tmp_path, None, SMARTER_CACHE_TTL="soon").fails("get", "users")
    assert "SMARTER_CACHE_TTL" in line


UNEXPECTED = (
    "import smarter_domain.entrypoints.cli as cli\n"
    "class Broken:\n"
    "    def __init__(self, *args, **kwargs):\n"
    "        raise RuntimeError('boom\\nsecond line\\n[SQL: SELECT secret]')\n"
    "cli.Domain = Broken\n"
    "cli.main(prog_name='smarter-domain')\n"
)


def test_an_unexpected_exception_is_one_line(smarter_database_url: str, tmp_path: Path) -> None:
    tool = Tool(tmp_path, smarter_database_url)
    line = tool.fails("get", "users", code=UNEXPECTED)
    assert "RuntimeError: boom" in line
    assert "secret" not in line
    assert "SMARTER_DEBUG=1" in line


def test_smarter_debug_shows_the_traceback(smarter_database_url: str, tmp_path: Path) -> None:
    result = Tool(tmp_path, smarter_database_url, SMARTER_DEBUG="1").run(
        "get", "users", code=UNEXPECTED
    )
    assert result.returncode == 1
    assert b"Traceback" in result.stderr and b"RuntimeError: boom" in result.stderr
    result = Tool(tmp_path, CLOSED_PORT_URL, SMARTER_DEBUG="1").run("get", "users")
    assert result.returncode == 1 and b"Traceback" in result.stderr


def test_usage_errors_still_exit_2(tmp_path: Path) -> None:
    tool = Tool(tmp_path, CLOSED_PORT_URL)
    for command in (("get", "widgets"), ("apply",), ("nonsense",), ("get", "users", "-o", "xml")):
        result = tool.run(*command)
        assert result.returncode == 2, result.stderr
        assert b"Traceback" not in result.stderr
    assert files(tmp_path) == set()
