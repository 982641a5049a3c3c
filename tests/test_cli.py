"""The smarter-domain command end to end, through subprocess, on SQLite and on
PostgreSQL + Redis."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

import smarter_domain as sd

from .builders import cli_env

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class CLI:
    def __init__(self, cwd: Path, database_url: str | None, redis_url: str | None) -> None:
        self.cwd = cwd
        self.env = cli_env(database_url, redis_url)

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["smarter-domain", *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            input=stdin,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def json(self, *args: str) -> object:
        return json.loads(self.ok(*args, "-o", "json"))

    def fails(self, *args: str, code: int = 1, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == code, (result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        return result.stderr


@pytest.fixture
def cli(smarter_database_url: str, smarter_stack_redis_url: str | None, tmp_path: Path) -> CLI:
    tool = CLI(tmp_path, smarter_database_url, smarter_stack_redis_url)
    tool.ok("bootstrap")
    return tool


def test_bare_command_migrates_bootstraps_and_prints_the_platform_admin(tmp_path: Path) -> None:
    tool = CLI(tmp_path, None, None)
    profile = json.loads(tool.ok())
    assert profile["account"]["account_number"] == sd.SMARTER_ACCOUNT_NUMBER
    assert profile["user"]["username"] == "admin"
    assert (tmp_path / "smarter_domain.db").exists()
    assert json.loads(tool.ok()) == profile


def test_migrate_an_empty_database(smarter_empty_database_url: str, tmp_path: Path) -> None:
    tool = CLI(tmp_path, smarter_empty_database_url, None)
    assert "migrated" in tool.ok("migrate")
    assert "3141-5926-5359" in tool.ok("bootstrap")


def test_the_walkthrough(cli: CLI, smarter_stack_redis_url: str | None) -> None:
    out = cli.ok("apply", "-f", str(EXAMPLES / "walkthrough.yaml"))
    assert "Account acme (4242-4242-4242) applied" in out
    again = cli.ok("apply", "-f", str(EXAMPLES / "walkthrough.yaml"))  # idempotent
    assert again == out
    users = cli.json("get", "users")
    assert [u["username"] for u in users] == ["admin", "jdoe", "asmith"]  # type: ignore[union-attr,index]
    accounts = yaml.safe_load(cli.ok("get", "accounts", "-o", "yaml"))
    assert [a["account_number"] for a in accounts] == ["3141-5926-5359", "4242-4242-4242"]
    assert "4242-4242-4242" in cli.ok("get", "accounts")  # the table
    described = cli.json("describe", "account", "4242-4242-4242")
    assert described["spec"]["config"]["timezone"] == "America/New_York"  # type: ignore[index]
    user = yaml.safe_load(cli.ok("describe", "user", "jdoe"))
    assert user["kind"] == "User"
    assert user["spec"]["config"]["isStaff"] is True
    assert cli.ok("account-number", "https://hr.4242-4242-4242.api.example.com/").strip() == (
        "4242-4242-4242"
    )
    assert "deleted" in cli.ok("delete", "profile", "jdoe-platform")
    profiles = cli.json("get", "profiles")
    assert "jdoe-platform" not in [p["name"] for p in profiles]  # type: ignore[union-attr,index]
    assert "invalidated" in cli.ok("cache", "invalidate", "user", "jdoe")
    if smarter_stack_redis_url:  # the fleet view (tests/test_fleet.py): every live process
        stats = cli.json("cache", "stats")
        assert set(stats) == {"processes", "totals", "unreadable"}  # type: ignore[arg-type]
    else:
        assert "no Redis configured" in cli.fails("cache", "stats")
    cli.ok("delete", "user", "asmith")
    assert [u["username"] for u in cli.json("get", "users")] == ["admin", "jdoe"]  # type: ignore[union-attr,index]


def test_acting_as_a_staff_member(cli: CLI) -> None:
    cli.ok("apply", "-f", str(EXAMPLES / "account.yaml"))
    cli.ok("apply", "-f", str(EXAMPLES / "user.yaml"))
    users = cli.json("--as", "jdoe", "get", "users")
    assert [u["username"] for u in users] == ["jdoe"]  # type: ignore[union-attr,index]
    err = cli.fails("--as", "jdoe", "apply", "-f", str(EXAMPLES / "account.yaml"))
    assert err.strip().startswith("Error: PermissionDenied")
    cli.fails("--as", "jdoe", "delete", "account", "4242-4242-4242")
    cli.fails("--as", "nobody", "get", "users")
    manifest = yaml.safe_load((EXAMPLES / "user.yaml").read_text())
    manifest["metadata"].update(name="newbie", username="newbie")
    cli.ok("--as", "jdoe", "apply", "-f", "-", stdin=yaml.safe_dump(manifest))
    assert len(cli.json("--as", "jdoe", "get", "users")) == 2  # type: ignore[arg-type]


def test_a_file_with_a_bad_document_applies_nothing(cli: CLI, tmp_path: Path) -> None:
    good = (EXAMPLES / "account.yaml").read_text()
    bad = yaml.safe_dump(
        {
            "apiVersion": "smarter.sh/v1",
            "kind": "UserProfile",
            "metadata": {"name": "x"},
            "spec": {"username": "ghost", "accountNumber": "4242-4242-4242"},
        }
    )
    path = tmp_path / "mixed.yaml"
    path.write_text(f"{good}\n---\n{bad}")
    assert "UserNotFound" in cli.fails("apply", "-f", str(path))
    assert len(cli.json("get", "accounts")) == 1  # type: ignore[arg-type]


def test_user_errors_are_one_line_with_exit_code_1(cli: CLI, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "smarter.sh/v1",
                "kind": "Account",
                "metadata": {"name": "Bad Name"},
                "spec": {"config": {"country": "XX"}},
            }
        )
    )
    err = cli.fails("apply", "-f", str(bad))
    assert len(err.strip().splitlines()) == 1
    assert "metadata.name" in err and "spec.config.country" in err
    cli.fails("apply", "-f", str(tmp_path / "missing.yaml"))
    cli.fails("describe", "account", "0000-0000-0000")
    cli.fails("account-number", "https://example.com/3141-5926-5359")
    cli.fails("--database-url", "mysql://127.0.0.1/x", "get", "users")


def test_bad_usage_exits_2(cli: CLI) -> None:
    cli.fails("get", "widgets", code=2)
    cli.fails("describe", "account", code=2)
    cli.fails("apply", code=2)
