"""The brokers' async front doors: ``await AccountBroker(adomain, actor=..., manifest=...)
.apply()`` and ``delete()``, ``get()``, ``describe()``, ``invalidate_cache()`` as coroutines.
Each wraps the sync broker of the ``AsyncDomain``'s sync domain (one copy of every rule:
validation, permissions, the transaction, the signal after the commit), each call run in a
greenlet (``concurrency.spawn``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from ..cache.concurrency import finish, spawn
from ..model.entities import Account, User, UserProfile
from .async_unit_of_work import sync_session_of
from .brokers import AccountBroker, Broker, ManifestSource, UserBroker, UserProfileBroker

if TYPE_CHECKING:
    from .ports import AsyncWiring

E = TypeVar("E", Account, User, UserProfile)


class AsyncBroker(Generic[E]):
    broker_type: ClassVar[type[Broker[Any]]]

    def __init__(
        self,
        domain: AsyncWiring,
        *,
        actor: UserProfile,
        manifest: ManifestSource | None = None,
        session: Any = None,
        **target: Any,
    ) -> None:
        """As the sync broker's (``session=``: the application's ``AsyncSession``)."""
        self.sync: Broker[E] = self.broker_type(
            domain.sync, actor=actor, manifest=manifest, session=sync_session_of(session), **target
        )

    async def apply(self) -> E:
        return await finish(self.sync.apply)  # a write: to the end (``concurrency.finish``)

    async def delete(self) -> None:
        await finish(self.sync.delete)

    async def get(self, name: str | None = None) -> list[E]:
        return await spawn(self.sync.get, name)

    async def describe(self) -> dict[str, Any]:
        return await spawn(self.sync.describe)

    async def invalidate_cache(self) -> None:
        await finish(self.sync.invalidate_cache)


class AsyncAccountBroker(AsyncBroker[Account]):
    broker_type = AccountBroker


class AsyncUserBroker(AsyncBroker[User]):
    broker_type = UserBroker


class AsyncUserProfileBroker(AsyncBroker[UserProfile]):
    broker_type = UserProfileBroker
