from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import smarter_domain as sd


def run(*args: str, cwd: Path, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTER_")}
    if url:
        env["SMARTER_DATABASE_URL"] = url
    return subprocess.run(
        ["smarter-domain", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_bare_command_migrates_bootstraps_and_prints_the_platform_account(tmp_path: Path) -> None:
    first = run(cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    profile = json.loads(first.stdout)
    assert profile["account"]["account_number"] == sd.SMARTER_ACCOUNT_NUMBER
    assert profile["user"]["username"] == "admin"
    assert (tmp_path / "smarter_domain.db").exists()
    second = run(cwd=tmp_path)
    assert json.loads(second.stdout) == profile


def test_cli_on_the_test_database(smarter_database_url: str, tmp_path: Path) -> None:
    result = run("--database-url", smarter_database_url, "bootstrap", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sd.SMARTER_ACCOUNT_NUMBER in result.stdout
    with sd.Domain(smarter_database_url) as domain:
        assert domain.accounts.get_by_number(sd.SMARTER_ACCOUNT_NUMBER) is not None


def test_cli_reports_errors_on_one_line(tmp_path: Path) -> None:
    result = run("--database-url", "mysql://127.0.0.1/x", "setup", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("Error: unsupported database")
