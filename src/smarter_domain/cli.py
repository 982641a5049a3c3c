"""The ``smarter-domain`` command. With no sub-command it migrates, bootstraps and shows the
platform account: the one-line check that an installation works."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import click

from .domain import Domain
from .errors import SmarterError
from .settings import Settings


def _domain(database_url: str | None, redis_url: str | None) -> Domain:
    env = Settings.from_env()
    return Domain(database_url or env.database_url, redis_url or env.redis_url, env.cache_ttl)


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(value, default=str))  # type: ignore[no-any-return]


@click.group(invoke_without_command=True)
@click.option("--database-url", envvar="SMARTER_DATABASE_URL", default=None)
@click.option("--redis-url", envvar="SMARTER_REDIS_URL", default=None)
@click.pass_context
def main(ctx: click.Context, database_url: str | None, redis_url: str | None) -> None:
    """Accounts, users and profiles of the Smarter platform."""
    ctx.obj = (database_url, redis_url)
    if ctx.invoked_subcommand is None:
        ctx.invoke(setup)


@main.command()
@click.pass_obj
def migrate(obj: tuple[str | None, str | None]) -> None:
    """Bring the database schema to the newest migration."""
    with _domain(*obj) as domain:
        domain.migrate()
        click.echo(f"migrated {domain.engine.url.render_as_string(hide_password=True)}")


@main.command()
@click.pass_obj
def setup(obj: tuple[str | None, str | None]) -> None:
    """Migrate, bootstrap, and print the platform account and its admin profile."""
    try:
        with _domain(*obj) as domain:
            domain.migrate()
            profile = domain.bootstrap()
    except SmarterError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(_jsonable(asdict(profile)), indent=2))


@main.command()
@click.pass_obj
def bootstrap(obj: tuple[str | None, str | None]) -> None:
    """Create the platform account and its admin (idempotent)."""
    try:
        with _domain(*obj) as domain:
            profile = domain.bootstrap()
    except SmarterError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"platform account {profile.account.account_number}, admin {profile.user.username}")
