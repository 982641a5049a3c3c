from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import smarter_domain as sd
from smarter_domain import Domain, Settings
from smarter_domain.domain import set_domain


def test_bootstrap_creates_the_platform_account_admin_and_profile(domain: Domain) -> None:
    profile = domain.bootstrap()
    assert profile.account.account_number == sd.SMARTER_ACCOUNT_NUMBER
    assert profile.account.is_default_account
    assert profile.user.username == sd.SMARTER_ADMIN_USERNAME
    assert profile.user.is_superuser and profile.user.is_staff
    assert domain.accounts.get_default() == profile.account


def test_bootstrap_is_idempotent(domain: Domain) -> None:
    first = domain.bootstrap()
    snapshot = (
        domain.accounts.list_all(),
        domain.users.list_for_account(first.account.id),
        domain.profiles.list_for_account(first.account.id),
    )
    second = domain.bootstrap()
    assert second == first
    assert snapshot == (
        domain.accounts.list_all(),
        domain.users.list_for_account(first.account.id),
        domain.profiles.list_for_account(first.account.id),
    )
    assert second.version == 1 and second.account.version == 1


def test_bootstrap_completes_a_partial_setup(domain: Domain) -> None:
    admin = domain.users.add(username=sd.SMARTER_ADMIN_USERNAME, is_staff=True, is_superuser=True)
    profile = domain.bootstrap()
    assert profile.user == admin


def test_bootstrap_from_two_processes_at_once(smarter_database_url: str) -> None:
    script = (
        "import sys, smarter_domain as sd\n"
        "with sd.Domain(sys.argv[1]) as d: print(d.bootstrap().id)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, smarter_database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert results[0][0] == results[1][0]
    with Domain(smarter_database_url) as domain:
        assert len(domain.accounts.list_all()) == 1


def test_settings_from_env_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings("sqlite:///smarter_domain.db", None, 600)
    env = {
        "SMARTER_DATABASE_URL": "postgresql://u@127.0.0.1/db",
        "SMARTER_REDIS_URL": "redis://127.0.0.1:6379/0",
        "SMARTER_CACHE_TTL": "30",
    }
    assert Settings.from_env(env) == Settings(
        "postgresql://u@127.0.0.1/db", "redis://127.0.0.1:6379/0", 30
    )


@pytest.mark.parametrize("ttl", ["soon", "0", "-5", "1.5"])
def test_bad_cache_ttl_is_a_configuration_error(ttl: str) -> None:
    with pytest.raises(sd.ConfigurationError):
        Settings.from_env({"SMARTER_CACHE_TTL": ttl})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"database_url": "mysql://127.0.0.1/x"},
        {"database_url": "not a url"},
        {"database_url": "sqlite://", "cache_ttl": 0},
        {"database_url": "sqlite://", "cache_ttl": True},
    ],
)
def test_bad_domain_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(sd.ConfigurationError):
        Domain(**kwargs)  # type: ignore[arg-type]


def test_postgresql_urls_use_psycopg3() -> None:
    with Domain("postgresql://u@127.0.0.1:1/db") as domain:
        assert domain.engine.url.drivername == "postgresql+psycopg"


def test_get_domain_builds_from_the_environment_in_the_working_directory(tmp_path: Path) -> None:
    script = (
        "import smarter_domain as sd\n"
        "d = sd.get_domain()\n"
        "assert d is sd.get_domain()\n"
        "d.migrate(); print(d.bootstrap().account.account_number)\n"
        "print(d.settings)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTER_")}
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert sd.SMARTER_ACCOUNT_NUMBER in out
    assert "redis_url=None" in out and "cache_ttl=600" in out
    assert (tmp_path / "smarter_domain.db").exists()


def test_configure_installs_the_default_and_closes_the_one_it_replaces(tmp_path: Path) -> None:
    previous = set_domain(None)
    try:
        first = sd.configure(database_url=f"sqlite:///{tmp_path / 'a.db'}", cache_ttl=5)
        assert sd.get_domain() is first
        assert first.settings.cache_ttl == 5
        second = sd.configure(database_url=f"sqlite:///{tmp_path / 'b.db'}")
        assert sd.get_domain() is second
        assert first._closed
        mine = Domain(f"sqlite:///{tmp_path / 'c.db'}")
        assert set_domain(mine) is second
        assert sd.get_domain() is mine
        third = sd.configure(database_url=f"sqlite:///{tmp_path / 'd.db'}")
        assert not mine._closed  # application-owned: left open
        third.close()
        mine.close()
    finally:
        set_domain(previous)


def test_domain_shares_an_application_engine(smarter_database_url: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(smarter_database_url)
    with Domain(engine=engine) as domain:
        assert domain.engine is engine
        assert domain.accounts.list_all() == []
    with engine.connect():  # still usable: the domain did not dispose it
        pass
    engine.dispose()
