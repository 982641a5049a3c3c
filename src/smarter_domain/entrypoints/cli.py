"""The ``smarter-domain`` command: migrate, bootstrap, apply manifests, inspect and delete,
and look at the cache. With no sub-command it migrates, bootstraps and prints the platform
admin's profile.

Exit codes: 0 success, 1 any error (one line on stderr, no traceback), 2 bad usage.

Every error, the library's own or not (a database that is unreachable or not migrated, a bad
Redis URL, an unexpected exception), is printed as one line, ``Error: Type: message``, with
exit code 1. Set ``SMARTER_DEBUG=1`` in the environment to get the traceback instead.

Only ``migrate``, the bare command (setup) and ``demo`` may create a SQLite database file;
every other command on a SQLite file that does not exist says so (``no database at PATH:
run `smarter-domain migrate```) and creates nothing. Manifest files (and stdin, ``-f -``) must
be UTF-8 (a byte order mark is allowed).

This module imports click and little else: ``smarter-domain --help`` loads no SQLAlchemy,
redis, dogpile or pydantic. Each command imports what it uses in its body (the Domain, the
brokers, YAML, rich).
"""

from __future__ import annotations

import codecs
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from ..model.errors import (
    NotFoundError,
    NotMigratedError,
    PermissionDenied,
    SmarterError,
    UserNotFound,
    ValidationError,
)
from ..model.platform_account import SMARTER_ADMIN_USERNAME
from ..model.text import MAX_TEXT

if TYPE_CHECKING:
    from ..domain import Domain
    from ..model.entities import UserProfile
    from ..services.brokers import Broker

F = TypeVar("F", bound=Callable[..., Any])

DEBUG_ENV = "SMARTER_DEBUG"
"""Set to 1 to see the traceback of an error instead of its one line."""
MIGRATE_HINT = "run `smarter-domain migrate`"
MAX_MESSAGE = 1000
"""The most characters of an error's one line."""
MAX_MANIFEST_BYTES = 4 * MAX_TEXT + 3
"""A manifest file is read up to this: no UTF-8 text of ``MAX_TEXT`` characters (and a BOM)
is longer."""

KINDS = {
    "account": "Account",
    "accounts": "Account",
    "user": "User",
    "users": "User",
    "profile": "UserProfile",
    "profiles": "UserProfile",
    "userprofile": "UserProfile",
    "userprofiles": "UserProfile",
}
COLUMNS = {
    "Account": ("id", "account_number", "name", "company_name", "is_default_account", "version"),
    "User": ("id", "username", "email", "is_staff", "is_superuser", "is_active", "version"),
    "UserProfile": ("id", "name", "user", "account", "is_test", "version"),
}


@dataclasses.dataclass
class Context:
    database_url: str | None
    redis_url: str | None
    actor_name: str

    @contextmanager
    def domain(self, *, create: bool = False) -> Iterator[Domain]:
        """The Domain of the options; unless ``create``, a SQLite file must already exist."""
        from ..settings import Settings

        env = Settings.from_env()
        database_url = self.database_url or env.database_url
        if not create:
            require_database(database_url)
        domain_class = _domain_class()
        with domain_class(database_url, self.redis_url or env.redis_url, env.cache_ttl) as domain:
            yield domain

    def actor(self, domain: Domain) -> UserProfile:
        """The acting profile (``Domain.actor``): the user's profile in the platform account,
        else its oldest."""
        try:
            return domain.actor(self.actor_name)
        except UserNotFound as exc:
            raise UserNotFound(f"--as {self.actor_name}: no such user (run bootstrap?)") from exc
        except PermissionDenied as exc:
            raise PermissionDenied(f"--as {self.actor_name}: {exc}") from exc


def _domain_class() -> type[Domain]:
    """``Domain``, imported with the first command that needs it (SQLAlchemy, the cache).
    Looked up in this module's globals, so that ``cli.Domain = Other`` replaces it."""
    domain_class: type[Domain] | None = globals().get("Domain")
    if domain_class is None:
        from ..domain import Domain as imported

        domain_class = globals()["Domain"] = imported
    return domain_class


def __getattr__(name: str) -> Any:
    """``cli.Domain`` before any command imported it (PEP 562)."""
    if name == "Domain":
        return _domain_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite database URL, or None (not SQLite, in memory, or unparsable:
    the Domain reports those)."""
    from ..adapters.database import normalize_url

    try:
        url = normalize_url(database_url)
    except SmarterError:
        return None
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):  # a URI filename (?uri=true)
        if url.query.get("mode") == "memory" or "mode=memory" in database:
            return None
        database = database.removeprefix("file:").split("?", 1)[0]
        if database.startswith("//"):
            database = database[2:]
    return Path(database)


def require_database(database_url: str) -> None:
    """Refuse a SQLite file that does not exist: connecting would create an empty one."""
    path = sqlite_path(database_url)
    if path is not None and not path.exists():
        raise NotMigratedError(f"no database at {path}: {MIGRATE_HINT}")


def _not_migrated(exc: BaseException) -> bool:
    """A driver's error for a missing table: the schema is not there (until the repositories
    raise NotMigratedError for it)."""
    text = f"{exc} {exc.__cause__ or ''}"
    return "no such table" in text or "UndefinedTable" in text


def error_line(exc: BaseException) -> str:
    """``exc`` as one line: ``Type: message``, whitespace folded, cut at MAX_MESSAGE."""
    message = " ".join(str(exc).split())
    if not isinstance(exc, SmarterError):
        # Another library's message may go on for lines (SQL, parameters, links): its first
        # line says what went wrong.
        message = " ".join(str(exc).strip().split("\n", 1)[0].split())
    line = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    # Printable on any terminal: a lone surrogate (from a file name, say) is escaped.
    line = line.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(line) > MAX_MESSAGE:
        line = f"{line[: MAX_MESSAGE - 3]}..."
    if (isinstance(exc, NotMigratedError) or _not_migrated(exc)) and (
        "`smarter-domain migrate`" not in line
    ):
        line = f"{line} ({MIGRATE_HINT})"
    elif not isinstance(exc, SmarterError):
        line = f"{line} ({DEBUG_ENV}=1 shows the traceback)"
    return line


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


class SmarterGroup(click.Group):
    """Prints any error of a command as one line (exit 1), or with ``SMARTER_DEBUG=1`` lets
    the traceback through; click's own exits (usage: 2) are left to click."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if debugging():
                raise
            raise click.ClickException(error_line(exc)) from None


def output_option(default: str = "table") -> Callable[[F], F]:
    return click.option(
        "-o",
        "--output",
        type=click.Choice(["table", "json", "yaml"]),
        default=default,
        show_default=True,
        help="table for people, json or yaml for scripts",
    )


def plain(value: Any) -> Any:
    """JSON/YAML-ready data of an entity (nested entities by their natural key)."""
    if isinstance(value, list):
        return [plain(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json.loads(json.dumps(dataclasses.asdict(value), default=str))
    return value


def emit(data: Any, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(data, indent=2, default=str))
    elif output == "yaml":
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)
    else:
        from rich.console import Console

        Console().print(data)


def _cell(entity: Any, column: str) -> str:
    from ..model.entities import Account, User

    value = getattr(entity, column)
    if isinstance(value, User):
        return value.username
    if isinstance(value, Account):
        return value.account_number
    return str(value)


def emit_entities(kind: str, entities: list[Any], output: str) -> None:
    if output != "table":
        emit(plain(entities), output)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{kind}s ({len(entities)})")
    for column in COLUMNS[kind]:
        table.add_column(column)
    for entity in entities:
        table.add_row(*(Text(_cell(entity, column)) for column in COLUMNS[kind]))
    Console().print(table)


@click.group(cls=SmarterGroup, invoke_without_command=True)
@click.option("--database-url", envvar="SMARTER_DATABASE_URL", help="default: SQLite file")
@click.option("--redis-url", envvar="SMARTER_REDIS_URL", help="default: memory tier only")
@click.option(
    "--as",
    "actor_name",
    default=SMARTER_ADMIN_USERNAME,
    show_default=True,
    help="the username to act as",
)
@click.version_option(package_name="smarter-domain")
@click.pass_context
def main(
    ctx: click.Context, database_url: str | None, redis_url: str | None, actor_name: str
) -> None:
    """Accounts, users and profiles of the Smarter platform."""
    ctx.obj = Context(database_url, redis_url, actor_name)
    if ctx.invoked_subcommand is None:
        ctx.invoke(setup)


@main.command()
@click.pass_obj
def migrate(obj: Context) -> None:
    """Bring the database schema to the newest migration."""
    with obj.domain(create=True) as domain:
        domain.migrate()
        click.echo(f"migrated {domain.engine.url.render_as_string(hide_password=True)}")


@main.command()
@click.pass_obj
def bootstrap(obj: Context) -> None:
    """Create the platform account and its admin (idempotent)."""
    with obj.domain() as domain:
        profile = domain.bootstrap()
    click.echo(f"platform account {profile.account.account_number}, admin {profile.user.username}")


@main.command()
@click.pass_obj
def setup(obj: Context) -> None:
    """Migrate, bootstrap, and print the platform admin's profile."""
    with obj.domain(create=True) as domain:
        domain.migrate()
        profile = domain.bootstrap()
    emit(plain(profile), "json")


@main.command()
@click.option("-f", "--filename", "path", required=True, type=click.Path(allow_dash=True))
@output_option()
@click.pass_obj
def apply(obj: Context, path: str, output: str) -> None:
    """Apply the manifests of a YAML file (several --- documents: one transaction)."""
    text = read_manifest(path)
    with obj.domain() as domain:
        entities = domain.apply_all(text, actor=obj.actor(domain))
    if output == "table":
        for entity in entities:
            click.echo(f"{type(entity).__name__} {_label(entity)} applied")
    else:
        emit(plain(entities), output)


def read_manifest(path: str) -> str:
    """The text of a manifest file (``-``: stdin): UTF-8, strictly, a byte order mark
    allowed, at most ``MAX_MANIFEST_BYTES``."""
    name = "stdin" if path == "-" else path
    try:
        if path == "-":
            data = _read_at_most(sys.stdin.buffer)
        else:
            with open(path, "rb") as stream:
                data = _read_at_most(stream)
    except OSError as exc:
        raise ValidationError(f"cannot read {name}: {exc.strerror or exc}") from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise ValidationError(f"cannot read {name}: larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        return codecs.decode(data, "utf-8-sig", "strict")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"cannot read {name}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start})"
        ) from None


def _read_at_most(stream: IO[bytes]) -> bytes:
    return stream.read(MAX_MANIFEST_BYTES + 1)


def _label(entity: Any) -> str:
    from ..model.entities import Account, User

    if isinstance(entity, Account):
        return f"{entity.name} ({entity.account_number})"
    if isinstance(entity, User):
        return entity.username
    return f"{entity.name} ({entity.user.username}@{entity.account.account_number})"


def _kind(name: str) -> str:
    try:
        return KINDS[name.lower()]
    except KeyError:
        raise click.BadParameter(f"one of {', '.join(sorted(KINDS))}", param_hint="KIND") from None


def _broker(domain: Domain, kind: str, actor: UserProfile, name: str) -> Broker[Any]:
    """A broker for the one entity of ``kind`` called ``name`` that the actor can see."""
    from ..services.brokers import BROKERS

    matches = BROKERS[kind].of(domain, actor).get(name)
    if not matches:
        raise NotFoundError(f"no {kind} named {name!r}")
    if len(matches) > 1:
        raise ValidationError(f"{len(matches)} {kind}s are named {name!r}", {"name": "ambiguous"})
    return BROKERS[kind].of(domain, actor, matches[0])


@main.command()
@click.argument("kind")
@click.argument("name", required=False)
@output_option()
@click.pass_obj
def get(obj: Context, kind: str, name: str | None, output: str) -> None:
    """List accounts, users or profiles (those the actor may see)."""
    kind = _kind(kind)
    with obj.domain() as domain:
        from ..services.brokers import BROKERS

        emit_entities(kind, BROKERS[kind].of(domain, obj.actor(domain)).get(name), output)


@main.command()
@click.argument("kind")
@click.argument("name")
@output_option("yaml")
@click.pass_obj
def describe(obj: Context, kind: str, name: str, output: str) -> None:
    """Print the manifest of one entity as it now stands."""
    with obj.domain() as domain:
        described = _broker(domain, _kind(kind), obj.actor(domain), name).describe()
    emit(described, "yaml" if output == "table" else output)


@main.command()
@click.argument("kind")
@click.argument("name")
@click.pass_obj
def delete(obj: Context, kind: str, name: str) -> None:
    """Delete one entity (profiles of a deleted account or user go with it)."""
    kind = _kind(kind)
    with obj.domain() as domain:
        _broker(domain, kind, obj.actor(domain), name).delete()
    click.echo(f"{kind} {name} deleted")


@main.command("account-number")
@click.argument("url")
def account_number(url: str) -> None:
    """Print the account number in a URL's host (exit 1 if there is none)."""
    from ..model.urls import account_number_from_url

    number = account_number_from_url(url)
    if number is None:
        raise click.ClickException(f"no account number in the host of {url!r}")
    click.echo(number)


@main.group()
def cache() -> None:
    """Look at and invalidate the cache."""


def _fleet_client(obj: Context) -> Any:
    """A client of the Redis the processes heartbeat to (one line, exit 1, without one)."""
    from ..settings import Settings

    redis_url = obj.redis_url or Settings.from_env().redis_url
    if not redis_url:
        raise click.ClickException(
            "no Redis configured (SMARTER_REDIS_URL or --redis-url): the fleet view reads "
            "the heartbeats the processes write to it"
        )
    try:
        from ..cache.topology import parse_redis_url

        return parse_redis_url(redis_url).client(socket_timeout=2, socket_connect_timeout=2)
    except ImportError as exc:
        raise click.ClickException(
            f"the fleet view needs redis-py ({exc.name}): pip install 'smarter-domain[redis]'"
        ) from None


def _fleet(client: Any, namespace: str) -> Any:
    from ..cache.fleet import read_fleet
    from ..cache.resilience import REDIS_ERRORS

    try:
        return read_fleet(client, namespace)
    except REDIS_ERRORS as exc:
        raise click.ClickException(f"cannot read the fleet from Redis: {exc}") from None


def _fleet_data(fleet: Any) -> dict[str, Any]:
    now = time.time()
    processes = [
        {
            **dataclasses.asdict(p),
            "memory_hit_ratio": p.ratio("memory"),
            "redis_hit_ratio": p.ratio("redis"),
            "seen_seconds_ago": round(max(0.0, now - p.at), 1),
        }
        for p in fleet.processes
    ]
    return {"processes": processes, "totals": fleet.totals(), "unreadable": fleet.unreadable}


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ago(moment: float | None) -> str:
    if moment is None:
        return "never"
    seconds = max(0.0, time.time() - moment)
    return f"{seconds:.0f} s ago" if seconds < 3600 else f"{seconds / 3600:.1f} h ago"


def _fleet_table(fleet: Any) -> Any:
    """The fleet as a rich table, with a totals row."""
    from rich.table import Table
    from rich.text import Text

    from ..cache.fleet import hit_ratio

    table = Table(title=f"smarter-domain processes ({len(fleet.processes)} live)")
    for column in (
        "host",
        "pid",
        "door",
        "memory hits",
        "redis hits",
        "loads",
        "memory entries",
        "listener",
        "last gap",
        "breaker",
        "pending",
    ):
        table.add_column(column)
    for p in fleet.processes:
        table.add_row(  # what a heartbeat says is text, never rich markup
            Text(p.host),
            str(p.pid),
            Text(p.door),
            _ratio(p.ratio("memory")),
            _ratio(p.ratio("redis")),
            str(p.counters["loads"]),
            "-" if p.memory_entries is None else str(p.memory_entries),
            Text(p.listener),
            _ago(p.last_gap),
            Text(p.breaker),
            str(p.pending_invalidations),
        )
    totals = fleet.totals()
    table.add_row(
        "total",
        "",
        "",
        _ratio(hit_ratio(totals, "memory")),
        _ratio(hit_ratio(totals, "redis")),
        str(totals["loads"]),
        str(sum(p.memory_entries or 0 for p in fleet.processes)),
        f"{sum(p.listener == 'subscribed' for p in fleet.processes)} subscribed",
        "",
        f"{sum(p.breaker == 'open' for p in fleet.processes)} open",
        str(sum(p.pending_invalidations for p in fleet.processes)),
        style="bold",
    )
    if fleet.unreadable:
        table.caption = f"{fleet.unreadable} heartbeat(s) unreadable (not a record): skipped"
    return table


NAMESPACE_OPTION = click.option(
    "--namespace",
    default="smarter:v1",
    show_default=True,
    help="the domains' cache_namespace",
)


@cache.command("stats")
@output_option()
@NAMESPACE_OPTION
@click.pass_obj
def cache_stats(obj: Context, output: str, namespace: str) -> None:
    """Every live process's cache: hit ratio per tier, memory-tier size, listener, last gap,
    breaker (from the heartbeats in Redis)."""
    from ..cache.topology import close_client

    client = _fleet_client(obj)
    try:
        fleet = _fleet(client, namespace)
    finally:
        close_client(client)
    if output == "table":
        from rich.console import Console

        Console().print(_fleet_table(fleet))
    else:
        emit(_fleet_data(fleet), output)


@cache.command("top")
@click.option("--interval", type=click.FloatRange(0.1, 3600), default=2.0, show_default=True)
@click.option(
    "--iterations", type=click.IntRange(0), default=0, help="stop after this many (0: never)"
)
@NAMESPACE_OPTION
@click.pass_obj
def cache_top(obj: Context, interval: float, iterations: int, namespace: str) -> None:
    """A live view of every process's cache, refreshed every --interval seconds (Ctrl-C
    stops it)."""
    from rich.live import Live

    from ..cache.topology import close_client

    client = _fleet_client(obj)
    try:
        with Live(_fleet_table(_fleet(client, namespace)), auto_refresh=False) as live:
            shown = 1
            while not iterations or shown < iterations:
                time.sleep(interval)
                live.update(_fleet_table(_fleet(client, namespace)), refresh=True)
                shown += 1
    except KeyboardInterrupt:
        pass
    finally:
        close_client(client)


@cache.command("invalidate")
@click.argument("kind")
@click.argument("name")
@click.pass_obj
def cache_invalidate_command(obj: Context, kind: str, name: str) -> None:
    """Drop every cached entry about one entity, in every tier."""
    kind = _kind(kind)
    with obj.domain() as domain:
        _broker(domain, kind, obj.actor(domain), name).invalidate_cache()
    click.echo(f"cache entries of {kind} {name} invalidated")


@main.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """The walkthrough (docs/getting-started.md): migrate, bootstrap, apply the examples, show
    the result."""
    from ..resources import resource_directory

    obj: Context = ctx.obj
    walkthrough = resource_directory("examples") / "walkthrough.yaml"
    click.echo("$ smarter-domain migrate && smarter-domain bootstrap")
    ctx.invoke(migrate)
    ctx.invoke(bootstrap)
    click.echo(f"$ smarter-domain apply -f {walkthrough.name}")
    ctx.invoke(apply, path=str(walkthrough), output="table")
    for kind in ("accounts", "users", "profiles"):
        ctx.invoke(get, kind=kind, name=None, output="table")
    click.echo("$ smarter-domain describe account 4242-4242-4242")
    ctx.invoke(describe, kind="account", name="4242-4242-4242", output="yaml")
    url = "https://hr.4242-4242-4242.api.example.com/"
    click.echo(f"$ smarter-domain account-number {url}")
    ctx.invoke(account_number, url=url)
    with obj.domain() as domain:
        jdoe = domain.utils.get_cached_user_for_username("jdoe")
        account = domain.utils.get_cached_account_for_user(jdoe)
        assert account is not None
        click.echo(
            f"get_cached_account_for_user(jdoe) -> {account.account_number} ({account.name}):"
            " the default account wins over jdoe's older profile in acme"
        )


if __name__ == "__main__":  # python -m smarter_domain.entrypoints.cli
    main()
