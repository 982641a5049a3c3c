"""What the services need from the composition root that wires them.

Brokers and the account utilities are given a ``Domain``, but they are typed by this protocol,
so nothing in the services imports the composition root (``domain.Domain`` imports them): the
dependency points one way, and another root (a test's, an application's) only has to offer
these attributes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, scoped_session

    from ..cache.repositories import (
        CachedAccountRepository,
        CachedUserProfileRepository,
        CachedUserRepository,
    )
    from ..cache.tiered import TieredCache
    from .unit_of_work import UnitOfWork


class Wiring(Protocol):
    """The cached repositories, the cache and the units of work of one composition root."""

    @property
    def accounts(self) -> CachedAccountRepository: ...

    @property
    def users(self) -> CachedUserRepository: ...

    @property
    def profiles(self) -> CachedUserProfileRepository: ...

    @property
    def cache(self) -> TieredCache: ...

    def unit_of_work(
        self, session: Session | scoped_session[Session] | None = None
    ) -> UnitOfWork: ...


class AsyncWiring(Protocol):
    """What the async front doors of the services need from ``AsyncDomain``: the sync
    composition root it runs on greenlets."""

    @property
    def sync(self) -> Wiring: ...
