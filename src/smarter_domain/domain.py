"""The Domain: one container per application (or per test) wiring engine, repositories and,
later, caches and brokers. ``configure()`` / ``get_domain()`` manage the process default."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from dogpile.cache import CacheRegion
from sqlalchemy import Engine
from sqlalchemy.orm import Session, scoped_session, sessionmaker
from sqlalchemy.pool import SingletonThreadPool, StaticPool

from . import forking, migrations
from .adapters.database import autocommit_reads, create_domain_engine, enforce_integrity
from .adapters.repositories import (
    SqlAccountRepository,
    SqlUserProfileRepository,
    SqlUserRepository,
    translated_errors,
)
from .cache.keys import DEFAULT_NAMESPACE, CacheKeys
from .cache.options import RedisOptions, memory_region
from .cache.repositories import (
    CachedAccountRepository,
    CachedUserProfileRepository,
    CachedUserRepository,
)
from .cache.stats import CacheStats
from .cache.tiered import TieredCache
from .defaults import ProcessDefault
from .model.changes import Change
from .model.entities import Entity, UserProfile
from .model.errors import CacheUnavailable, ConfigurationError, ConflictError, ValidationError
from .model.platform_account import SMARTER_ACCOUNT_NUMBER, SMARTER_ADMIN_USERNAME
from .services.actors import find_actor
from .services.health import Health, check_health
from .services.unit_of_work import AfterCommit, AutoCommitScope, UnitOfWork
from .services.utils import AccountUtilities
from .settings import DEFAULT_CACHE_TTL, Settings

if TYPE_CHECKING:
    from .cache.bus import InvalidationListener
    from .cache.fleet import Heartbeat
    from .cache.topology import RedisTarget

    # Brokers and manifests (pydantic, langcodes, email-validator) are imported when a
    # manifest is applied, not with the package: most processes only read.
    from .services.brokers import ManifestSource

log = logging.getLogger(__name__)

Consistency = Literal["strict", "available"]
"""``strict`` (the default): a write that cannot reach Redis before it commits is refused
(``CacheUnavailable``), so that no process serves the old value once it returns, whatever
fails. ``available``: it commits anyway and its invalidation is replayed when Redis is back;
meanwhile other processes may serve the old value."""


class Domain:
    """Everything the library needs, built once and injected.

    ``Domain(database_url=..., redis_url=None, cache_ttl=600)``; pass ``engine=`` to share an
    engine the application already owns (the Domain then leaves it open on ``close()``).
    """

    def __init__(
        self,
        database_url: str | None = None,
        redis_url: str | None = None,
        cache_ttl: int = DEFAULT_CACHE_TTL,
        *,
        engine: Engine | None = None,
        engine_options: dict[str, Any] | None = None,
        memory_region: CacheRegion | None = None,
        redis_region: CacheRegion | None = None,
        memory_cache_size: int = 10_000,
        cache_namespace: str = DEFAULT_NAMESPACE,
        redis_options: RedisOptions | None = None,
        consistency: Consistency = "strict",
        migrations_table: str = migrations.DEFAULT_VERSION_TABLE,
        _reads_in_autocommit: bool = False,
        _subscribe_wait: float = 2.0,
        _front_door: str = "sync",
    ) -> None:
        if consistency not in ("strict", "available"):
            raise ConfigurationError(
                f"consistency must be 'strict' or 'available', not {consistency!r}"
            )
        self.consistency: Consistency = consistency
        #: Where ``migrate()`` keeps the library's Alembic revision (never ``alembic_version``,
        #: the application's): ``migrations.check_version_table`` refuses a bad name here.
        self.migrations_table = migrations.check_version_table(migrations_table)
        defaults = Settings()
        self.settings = Settings(
            database_url=database_url
            or (engine.url.render_as_string(hide_password=False) if engine else None)
            or defaults.database_url,
            redis_url=redis_url,
            cache_ttl=cache_ttl,
        )
        self._owns_engine = engine is None
        if engine is not None and isinstance(engine.pool, SingletonThreadPool | StaticPool):
            raise ConfigurationError(
                "an engine sharing one connection (StaticPool, SingletonThreadPool) would let "
                "cached reads see uncommitted data: use a pooled engine"
            )
        self.engine: Engine = engine or create_domain_engine(
            self.settings.database_url, **(engine_options or {})
        )
        enforce_integrity(self.engine)  # foreign keys on every SQLite engine, injected too
        self.session_factory: sessionmaker[Session] = sessionmaker(
            self.engine, expire_on_commit=False
        )
        self._redis_client: Any = None  # the client this domain made, closed with it
        self.redis_target: RedisTarget | None = None  # where it is, from ``redis_url``
        self.redis_options = redis_options or RedisOptions()
        self._listener: InvalidationListener | None = None
        self._subscribe_wait = _subscribe_wait  # (0 for an AsyncDomain: never on the loop)
        self.front_door = _front_door  # (what the heartbeat says: "sync" or "async")
        self.telemetry: Any = None  # ``smarter_domain.telemetry.instrument`` sets it
        self._beat: Heartbeat | None = None
        self.cache = self._build_cache(
            memory_region, redis_region, memory_cache_size, cache_namespace, redis_options
        )
        self._after_commit: list[AfterCommit] = []
        reads: Callable[[], Session] = self.session_factory
        # (``_reads_in_autocommit``: the engine is the sync face of an AsyncDomain's own.)
        if (self._owns_engine or _reads_in_autocommit) and autocommit_reads(self.engine):
            # The session factory's own sessions (its configuration, its event listeners),
            # bound to the engine in autocommit. Not on an application's engine: its
            # listeners may set up each transaction (SET LOCAL), which autocommit would skip.
            reads = partial(
                self.session_factory,
                bind=self.engine.execution_options(isolation_level="AUTOCOMMIT"),
            )
        scope = AutoCommitScope(reads, self.unit_of_work)
        self.accounts = CachedAccountRepository(SqlAccountRepository(scope), self.cache)
        self.users = CachedUserRepository(SqlUserRepository(scope), self.cache)
        self.profiles = CachedUserProfileRepository(
            SqlUserProfileRepository(scope), self.cache, self.users, self.accounts
        )
        self.utils = AccountUtilities(self)
        self._closed = False
        forking.track(self)  # a forked child gets its own connections, listener and locks

    def _after_fork_in_child(self) -> None:
        """Called in a forked child by ``forking``'s at-fork hook."""
        if not self._closed:
            forking.after_fork_in_child(self.cache, self.engine if self._owns_engine else None)
            if self._beat is not None:
                self._beat.after_fork_in_child()

    def _build_cache(
        self,
        memory: CacheRegion | None,
        redis_tier: CacheRegion | None,
        memory_cache_size: int,
        namespace: str,
        redis_options: RedisOptions | None,
    ) -> TieredCache:
        keys, stats, ttl = CacheKeys(namespace), CacheStats(), self.settings.cache_ttl
        if memory is None:
            memory = memory_region(ttl, memory_cache_size)
        if redis_tier is None and not self.settings.redis_url:
            return TieredCache(memory, keys=keys, stats=stats)
        # redis-py (the ``redis`` extra) is imported only now: a domain without Redis needs none.
        try:
            from .cache.bus import InvalidationListener
            from .cache.regions import redis_region, secure_redis_region
            from .cache.resilience import REDIS_ERRORS
            from .cache.topology import parse_redis_url
        except ImportError as exc:
            raise ConfigurationError(
                f"a Redis tier needs redis-py ({exc.name}): pip install 'smarter-domain[redis]'"
            ) from exc
        options = redis_options or RedisOptions()
        target = parse_redis_url(self.settings.redis_url) if self.settings.redis_url else None
        self.redis_target = target
        if redis_tier is None:
            assert target is not None
            try:
                redis_tier, guard = redis_region(target, ttl, stats, keys, options)
            except REDIS_ERRORS as exc:  # a cluster client reads the slot map at creation
                raise ConfigurationError(
                    f"cannot reach the Redis at {target.safe_url}: {exc}"
                ) from exc
            self._redis_client = guard.client
        else:
            guard = secure_redis_region(redis_tier, stats, keys, options)
        cache = TieredCache(
            memory, redis_tier, keys=keys, stats=stats, guard=guard, ack_timeout=options.ack_timeout
        )
        if options.listen and target is not None:

            def gap() -> None:
                cache.listener_gap()
                guard.deliver_pending()

            beat = self._heartbeat(cache, options.heartbeat)

            def tick() -> None:
                guard.deliver_pending()  # an outage's invalidations go out as soon as it ends
                if beat is not None:
                    try:
                        beat.beat(guard.client, guard.origin)
                    except Exception:  # a failed beat costs the fleet view one beat, no more:
                        log.debug(  # never the listener (its loop calls this)
                            "heartbeat not written", exc_info=True, extra={"event": "beat_failed"}
                        )

            self._listener = InvalidationListener(
                target,
                guard.client,
                keys,
                guard.origin,
                drop=cache.drop_local,
                gap=gap,
                tick=tick,
            )
            cache.listener = self._listener
            self._listener.start(self._subscribe_wait)
        return cache

    def _heartbeat(self, cache: TieredCache, interval: float) -> Heartbeat | None:
        """This process's heartbeat for the fleet view (``cache/fleet.py``), beaten by the
        listener's thread."""
        if not interval > 0 or interval == float("inf"):  # 0 (or nonsense): none
            return None
        from .cache.fleet import Heartbeat, process_record

        started = time.time()

        def report() -> dict[str, Any]:
            guard, listener = cache.guard, cache.listener
            assert guard is not None
            return process_record(
                origin=guard.origin,
                counters=cache.stats.snapshot(),
                memory_entries=cache.memory_entries(),
                listener="subscribed" if listener is not None and listener.healthy else "down",
                last_gap=cache.last_gap,
                breaker="open" if guard.breaker.is_down else "closed",
                pending_invalidations=guard.pending_deletes,
                started=started,
                front_door=self.front_door,
            )

        self._beat = Heartbeat(cache.keys.namespace, report, interval)
        return self._beat

    @classmethod
    def from_env(cls) -> Domain:
        settings = Settings.from_env()
        return cls(settings.database_url, settings.redis_url, settings.cache_ttl)

    def unit_of_work(self, session: Session | scoped_session[Session] | None = None) -> UnitOfWork:
        """A unit of work with its own session, or, with ``session=``, inside the
        application's: the library's rows and the application's commit or roll back together,
        and the cache is prepared, invalidated and signalled around the application's commit
        (never on its rollback). See ``UnitOfWork``."""
        return UnitOfWork(
            self.session_factory,
            self._after_commit,
            (self._prepare_cache,),
            session=session,
            owner=self,
            invalidate=self._invalidate_committed,
        )

    def _invalidate_committed(self, changes: Sequence[Change]) -> None:
        """A joined unit's changes that were committed without a prepare (written by another
        ``before_commit`` listener), or committed again by a connection the session did not
        own: invalidated after the fact, replayed if Redis is down."""
        keys = self.cache.keys_of(changes)
        if keys:
            self.cache.invalidate(keys)

    def _prepare_cache(self, changes: Sequence[Change]) -> Callable[[], None] | None:
        """Before a commit: every key the changes make stale is dropped everywhere and its
        fills held off (``TieredCache.prepare``); after the commit, released. If Redis cannot
        be told first, ``strict`` refuses the write and ``available`` commits it and
        invalidates afterwards (replayed if need be)."""
        keys = self.cache.keys_of(changes)
        if not keys:
            return None
        hold = self.cache.prepare(keys)
        if hold is not None:
            return lambda: self.cache.release(keys, hold)
        if self.consistency == "strict":
            raise CacheUnavailable(
                "the write was refused: Redis could not be told before the commit, so other "
                "processes could go on serving the old value (nothing was committed)"
            )
        return lambda: self.cache.invalidate(keys)

    def actor(self, username: str, account_number: str | None = None) -> UserProfile:
        """The profile ``username`` acts as, for brokers: in ``account_number``'s account when
        given, else in the platform account if they belong to it, else their oldest. Raises
        ``UserNotFound``, or ``PermissionDenied`` for an inactive user or one who is not a
        member of the account named (``actors.find_actor``)."""
        return find_actor(self.users, self.profiles, self.accounts, username, account_number)

    def health(self, timeout: float = 2.0) -> Health:
        """The database, Redis and listener as this process sees them, for readiness probes:
        never raises, never takes much longer than ``timeout`` (``health.check_health``)."""
        return check_health(self.engine, self.cache, timeout)

    def on_commit(self, hook: AfterCommit) -> None:
        """Call ``hook(changes)`` after every unit of work of this domain commits."""
        self._after_commit.append(hook)

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` with the library's Alembic migrations, whose
        history lives in ``migrations_table`` beside the application's own (a database that
        an earlier release migrated, in ``alembic_version``, is moved over first)."""
        with translated_errors():
            migrations.upgrade(self.engine, revision, version_table=self.migrations_table)

    def bootstrap(self) -> UserProfile:
        """Create the platform account, its superuser and profile; safe to run any number of
        times, from several processes at once."""
        try:
            return self._bootstrap_once()
        except ConflictError:
            # Another process bootstrapped between our reads and our writes: read its rows.
            return self._bootstrap_once()

    def _bootstrap_once(self) -> UserProfile:
        with self.unit_of_work() as uow:
            account = uow.accounts.get_by_number(SMARTER_ACCOUNT_NUMBER) or uow.accounts.add(
                account_number=SMARTER_ACCOUNT_NUMBER,
                name="smarter",
                description="The Smarter platform account",
                company_name="Smarter",
                is_default_account=True,
            )
            user = uow.users.get_by_username(SMARTER_ADMIN_USERNAME) or uow.users.add(
                username=SMARTER_ADMIN_USERNAME, is_staff=True, is_superuser=True
            )
            profile = uow.profiles.get_for(user.id, account.id) or uow.profiles.add(
                user_id=user.id, account_id=account.id, name=SMARTER_ADMIN_USERNAME
            )
            uow.commit()
            return profile

    def apply(
        self, manifest: ManifestSource, *, actor: UserProfile, session: Session | None = None
    ) -> Entity:
        """Apply one manifest with the broker of its kind (``session=``: inside the
        application's transaction, see ``unit_of_work``)."""
        from .model.manifests import load_manifests
        from .services.brokers import broker_for

        documents = load_manifests(manifest)
        if len(documents) != 1:
            raise ValidationError(
                "apply takes one manifest", {"manifest": "several documents: use apply_all"}
            )
        entity: Entity = broker_for(self, documents[0], actor, session).apply()
        return entity

    def apply_all(
        self,
        manifests: ManifestSource | Sequence[ManifestSource],
        *,
        actor: UserProfile,
        session: Session | None = None,
    ) -> list[Entity]:
        """Apply every document in order, in one transaction (``session=``: one savepoint of
        the application's)."""
        from .services.brokers import apply_manifests

        return apply_manifests(self, manifests, actor, session)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_engine:
            self.engine.dispose()
        if self._listener is not None:
            self._listener.stop()
        guard = self.cache.guard
        if guard is not None and guard.pending_deletes:
            guard.deliver_pending()
            if guard.pending_deletes:
                log.error(
                    "closing with %d cache invalidations Redis never received: other "
                    "processes may serve those entries until they expire",
                    guard.pending_deletes,
                    extra={"event": "closed_with_pending", "pending": guard.pending_deletes},
                )
        if guard is not None:
            guard.close()
        if self._redis_client is not None:
            from .cache.topology import close_client

            close_client(self._redis_client)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        url = self.engine.url.render_as_string(hide_password=True)
        return f"Domain(database_url={url!r}, redis_url={self.settings.redis_url!r})"


_defaults: ProcessDefault[Domain] = ProcessDefault(lambda: Domain.from_env())


def configure(
    database_url: str | None = None,
    redis_url: str | None = None,
    cache_ttl: int = DEFAULT_CACHE_TTL,
    **options: Any,
) -> Domain:
    """Build a Domain and make it the process default; a default built earlier by
    ``configure``/``get_domain`` is closed."""
    domain = Domain(database_url, redis_url, cache_ttl, **options)
    replaced = _defaults.install(domain)
    if replaced is not None:
        replaced.close()
    return domain


def get_domain() -> Domain:
    """The process default, built from ``SMARTER_*`` environment variables on first use."""
    return _defaults.get()


def current_default() -> Domain | None:
    """The process default if one is installed (``get_domain`` would build one)."""
    return _defaults.current()


def set_domain(domain: Domain | None) -> Domain | None:
    """Install an application-owned Domain (or none) as the default; returns the previous one,
    which is left open: the caller owns both."""
    return _defaults.set(domain)
