"""Brokers: apply and delete manifests, with permissions, in one transaction each.

A broker checks the actor's permissions (re-read inside the transaction) before it writes,
writes through a unit of work, and after the commit (which invalidates the cache) sends
``cache_invalidate``. ``apply_manifests`` applies several documents in one transaction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from .entities import Account, User, UserProfile
from .errors import (
    AccountNotFound,
    PermissionDenied,
    UserNotFound,
    UserProfileNotFound,
    ValidationError,
)
from .manifests import (
    API_VERSION,
    AccountManifest,
    Manifest,
    UserManifest,
    UserProfileManifest,
    load_manifests,
)
from .platform_account import SMARTER_ACCOUNT_NUMBER, SMARTER_ADMIN_USERNAME
from .signals import cache_invalidate, send_safely
from .unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from .domain import Domain

E = TypeVar("E", Account, User, UserProfile)
ManifestSource = str | Mapping[str, Any] | BaseModel

RESERVED_USERNAME = re.compile(r"\d{4}-\d{4}-\d{4}-admin", re.ASCII)
"""The names ``get_cached_admin_user_for_account`` gives the admins it creates."""

# Fields a manifest sets, and the entity attribute each one lands in.
ACCOUNT_CONFIG_FIELDS = {
    "companyName": "company_name",
    "phoneNumber": "phone_number",
    "address1": "address1",
    "address2": "address2",
    "city": "city",
    "state": "state",
    "postalCode": "postal_code",
    "country": "country",
    "language": "language",
    "timezone": "timezone",
    "currency": "currency",
}
USER_CONFIG_FIELDS = {
    "firstName": "first_name",
    "lastName": "last_name",
    "email": "email",
    "isStaff": "is_staff",
    "isActive": "is_active",
}


def _changed(entity: Any, wanted: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in wanted.items() if getattr(entity, key) != value}


class Broker(Generic[E]):
    kind: ClassVar[str]
    entity_type: ClassVar[type[Any]]
    manifest_type: ClassVar[type[BaseModel]]
    target_argument: ClassVar[str]

    def __init__(
        self,
        domain: Domain,
        *,
        actor: UserProfile,
        manifest: ManifestSource | None = None,
        **target: Any,
    ) -> None:
        if not isinstance(actor, UserProfile):
            raise PermissionDenied("a broker acts for a user profile (actor=...)")
        unknown = set(target) - {self.target_argument}
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(unknown)}")
        self.domain = domain
        self.actor = actor
        self.manifest: Any = None
        if manifest is not None:
            documents = load_manifests(manifest)
            if len(documents) != 1 or not isinstance(documents[0], self.manifest_type):
                raise ValidationError(
                    f"{type(self).__name__} takes one {self.kind} manifest",
                    {"kind": f"expected one {self.kind} document"},
                )
            self.manifest = documents[0]
        self.target: E | None = target.get(self.target_argument)
        if self.target is not None and not isinstance(self.target, self.entity_type):
            raise TypeError(
                f"{self.target_argument}= takes a {self.entity_type.__name__}, "
                f"got {type(self.target).__name__}"
            )

    @classmethod
    def of(cls, domain: Domain, actor: UserProfile, entity: E | None = None) -> Broker[E]:
        """A broker for ``entity`` (or, with none, for listing with ``get()``)."""
        target: dict[str, Any] = {} if entity is None else {cls.target_argument: entity}
        return cls(domain, actor=actor, **target)

    # -- public API ---------------------------------------------------------------------

    def apply(self) -> E:
        """Create or update from the manifest, in one transaction; returns the entity."""
        with self.domain.unit_of_work() as uow:
            entity = self._apply(uow)
            uow.commit()
        self._announce(entity, "apply")
        return entity

    def delete(self) -> None:
        """Delete the entity (and what the database cascades to), in one transaction."""
        with self.domain.unit_of_work() as uow:
            entity = self._delete(uow)
            uow.commit()
        self._announce(entity, "delete")

    def get(self, name: str | None = None) -> list[E]:
        """The entities of this kind the actor may see, optionally only those named ``name``."""
        return [e for e in self._visible() if name is None or self._named(e, name)]

    def describe(self) -> dict[str, Any]:
        """The manifest of the entity as it now stands."""
        entity = self._resolve_visible()
        return self._manifest_of(entity)

    def invalidate_cache(self) -> None:
        """Drop every cached entry about the entity, in every tier, then send the signal."""
        entity = self._resolve_visible()
        self.domain.cache.invalidate(sorted(self._cache_keys(entity)))
        self._announce(entity, "invalidate")

    # -- for subclasses -----------------------------------------------------------------

    def _apply(self, uow: UnitOfWork) -> E:
        raise NotImplementedError

    def _delete(self, uow: UnitOfWork) -> E:
        raise NotImplementedError

    def _visible(self) -> list[E]:
        raise NotImplementedError

    def _named(self, entity: E, name: str) -> bool:
        raise NotImplementedError

    def _find(self, uow: UnitOfWork) -> E | None:
        raise NotImplementedError

    def _manifest_of(self, entity: E) -> dict[str, Any]:
        raise NotImplementedError

    def _cache_keys(self, entity: E) -> set[str]:
        return self.domain.cache.keys.for_entity(entity)

    # -- shared -------------------------------------------------------------------------

    def _announce(self, entity: E, action: str) -> None:
        send_safely(
            cache_invalidate,
            type(self),
            user_profile=self.actor,
            instance=entity,
            kind=self.kind,
            action=action,
        )

    def _require_manifest(self) -> Any:
        if self.manifest is None:
            raise ValidationError(
                f"{type(self).__name__} needs manifest= here", {"manifest": "required"}
            )
        return self.manifest

    def _resolve_visible(self) -> E:
        with self.domain.unit_of_work() as uow:
            entity = self._find(uow)
        if entity is None:
            raise self._not_found()
        if entity.id not in {e.id for e in self._visible()}:
            raise PermissionDenied(f"{self.kind} is not visible to {self._actor_name()}")
        return entity

    def _not_found(self) -> Exception:
        errors = {
            "Account": AccountNotFound,
            "User": UserNotFound,
            "UserProfile": UserProfileNotFound,
        }
        return errors[self.kind](f"no such {self.kind}")

    def _actor_name(self) -> str:
        return self.actor.user.username

    def _verified_actor(self, uow: UnitOfWork) -> UserProfile:
        """The actor's profile as the database has it now, read by id. Only the id of the
        profile given is trusted: its user, account and flags all come from the database, so
        a forged, cached or stale actor grants nothing."""
        profile = uow.profiles.get(self.actor.id)
        if (
            profile is None
            or profile.user.id != self.actor.user.id
            or not profile.user.is_active
            or not profile.account.is_active
        ):
            raise PermissionDenied(f"actor {self._actor_name()} is gone, inactive or not theirs")
        return profile

    def _require_superuser(self, uow: UnitOfWork) -> UserProfile:
        actor = self._verified_actor(uow)
        if not actor.user.is_superuser:
            raise PermissionDenied(f"{self.kind} changes need a superuser")
        return actor

    def _require_admin_of(self, uow: UnitOfWork, account: Account) -> UserProfile:
        """A superuser, or a staff member of ``account``."""
        actor = self._verified_actor(uow)
        if actor.user.is_superuser or (actor.user.is_staff and actor.account.id == account.id):
            return actor
        raise PermissionDenied(
            f"{self._actor_name()} may not change {self.kind}s of account {account.account_number}"
        )

    def _visible_accounts(self) -> list[Account] | None:
        """None: every account (superuser); else the actor's own."""
        with self.domain.unit_of_work() as uow:
            actor = self._verified_actor(uow)
        return None if actor.user.is_superuser else [actor.account]

    def _related_cache_keys(self, entity: Account | User, profiles: list[UserProfile]) -> set[str]:
        keys = self.domain.cache.keys
        found: set[str] = keys.for_entity(entity)
        for profile in profiles:
            found |= keys.for_entity(profile)
        return found


class AccountBroker(Broker[Account]):
    kind = "Account"
    entity_type = Account
    manifest_type = AccountManifest
    target_argument = "account"

    def _find(self, uow: UnitOfWork) -> Account | None:
        if self.target is not None:
            return uow.accounts.get(self.target.id)
        manifest: AccountManifest = self._require_manifest()
        if manifest.metadata.accountNumber:
            return uow.accounts.get_by_number(manifest.metadata.accountNumber)
        named = [a for a in uow.accounts.list_all() if a.name == manifest.metadata.name]
        if len(named) > 1:
            raise ValidationError(
                "ambiguous account",
                {"metadata.accountNumber": f"several are named {manifest.metadata.name!r}"},
            )
        return named[0] if named else None

    def _apply(self, uow: UnitOfWork) -> Account:
        manifest: AccountManifest = self._require_manifest()
        self._require_superuser(uow)
        config = manifest.spec.config
        wanted: dict[str, Any] = {
            attribute: getattr(config, field) for field, attribute in ACCOUNT_CONFIG_FIELDS.items()
        }
        wanted["name"] = manifest.metadata.name
        wanted["description"] = manifest.metadata.description
        current = self._find(uow)
        if current is None:
            return uow.accounts.add(account_number=manifest.metadata.accountNumber, **wanted)
        changes = _changed(current, wanted)
        return uow.accounts.update(current.id, **changes) if changes else current

    def _delete(self, uow: UnitOfWork) -> Account:
        self._require_superuser(uow)
        account = self._find(uow)
        if account is None:
            raise AccountNotFound("no such account")
        if account.account_number == SMARTER_ACCOUNT_NUMBER:
            raise PermissionDenied("the platform account cannot be deleted")
        uow.accounts.delete(account.id)
        return account

    def _visible(self) -> list[Account]:
        return self._visible_accounts() or self.domain.accounts.list_all()

    def _named(self, entity: Account, name: str) -> bool:
        return name in (entity.name, entity.account_number)

    def _manifest_of(self, entity: Account) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "metadata": {
                "name": entity.name,
                "description": entity.description,
                "version": "1.0.0",
                "accountNumber": entity.account_number,
            },
            "spec": {
                "config": {
                    field: getattr(entity, attribute)
                    for field, attribute in ACCOUNT_CONFIG_FIELDS.items()
                }
            },
            "status": {
                "id": entity.id,
                "isDefaultAccount": entity.is_default_account,
                "isActive": entity.is_active,
                "created": entity.created_at.isoformat(),
                "modified": entity.updated_at.isoformat(),
                "version": entity.version,
            },
        }

    def _cache_keys(self, entity: Account) -> set[str]:
        profiles = self.domain.profiles.inner.list_for_account(entity.id)
        return self._related_cache_keys(entity, profiles) | {
            self.domain.cache.keys.users_of_account(entity.id)
        }


class UserBroker(Broker[User]):
    kind = "User"
    entity_type = User
    manifest_type = UserManifest
    target_argument = "user"

    def _account(self, uow: UnitOfWork) -> Account:
        """The account the user manifest is about: spec.accountNumber, else the actor's."""
        number = self.manifest.spec.accountNumber if self.manifest is not None else None
        if not number:
            return self._verified_actor(uow).account
        account = uow.accounts.get_by_number(number)
        if account is None:
            raise AccountNotFound(f"no account {number}")
        return account

    def _find(self, uow: UnitOfWork) -> User | None:
        if self.target is not None:
            return uow.users.get(self.target.id)
        manifest: UserManifest = self._require_manifest()
        return uow.users.get_by_username(manifest.username)

    def _check_may_change(self, uow: UnitOfWork, actor: UserProfile, user: User) -> None:
        """A user is global: staff may change one only if it belongs to their account alone."""
        if actor.user.is_superuser:
            return
        if user.is_superuser:
            raise PermissionDenied("only a superuser may change a superuser")
        accounts = {p.account.id for p in uow.profiles.list_for_user(user.id)}
        if accounts != {actor.account.id}:
            raise PermissionDenied(
                f"{user.username} belongs to other accounts: only a superuser may change it"
            )

    def _apply(self, uow: UnitOfWork) -> User:
        manifest: UserManifest = self._require_manifest()
        account = self._account(uow)
        actor = self._require_admin_of(uow, account)
        if not actor.user.is_superuser and RESERVED_USERNAME.fullmatch(manifest.username):
            raise PermissionDenied(f"{manifest.username!r} is reserved for an account's admin")
        config = manifest.spec.config
        wanted: dict[str, Any] = {
            attribute: getattr(config, field) for field, attribute in USER_CONFIG_FIELDS.items()
        }
        wanted["email"] = wanted["email"] or ""
        user = self._find(uow)
        if user is None:
            user = uow.users.add(username=manifest.username, **wanted)
        else:
            self._check_may_change(uow, actor, user)
            if user.username == SMARTER_ADMIN_USERNAME and not (config.isStaff and config.isActive):
                raise PermissionDenied("the platform admin must stay active staff")
            changes = _changed(user, wanted)
            if changes:
                user = uow.users.update(user.id, **changes)
        if uow.profiles.get_for(user.id, account.id) is None:
            uow.profiles.add(
                user_id=user.id,
                account_id=account.id,
                name=manifest.metadata.name,
                description=manifest.metadata.description,
            )
        return user

    def _delete(self, uow: UnitOfWork) -> User:
        account = self._account(uow)
        actor = self._require_admin_of(uow, account)
        user = self._find(uow)
        if user is None:
            raise UserNotFound("no such user")
        if user.username == SMARTER_ADMIN_USERNAME:
            raise PermissionDenied("the platform admin cannot be deleted")
        if user.id == actor.user.id:
            raise PermissionDenied("an actor cannot delete itself")
        self._check_may_change(uow, actor, user)
        uow.users.delete(user.id)
        return user

    def _visible(self) -> list[User]:
        accounts = self._visible_accounts()
        if accounts is None:
            return self.domain.users.list_all()
        return self.domain.users.list_for_account(accounts[0].id)

    def _named(self, entity: User, name: str) -> bool:
        return entity.username == name

    def _manifest_of(self, entity: User) -> dict[str, Any]:
        profile = self.domain.profiles.get_for(entity.id, self.actor.account.id)
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "metadata": {
                "name": profile.name if profile and profile.name else entity.username,
                "description": profile.description if profile else "",
                "version": "1.0.0",
                "username": entity.username,
            },
            "spec": {
                "accountNumber": self.actor.account.account_number if profile else None,
                "config": {
                    field: getattr(entity, attribute)
                    for field, attribute in USER_CONFIG_FIELDS.items()
                },
            },
            "status": {
                "id": entity.id,
                "isSuperuser": entity.is_superuser,
                "dateJoined": entity.date_joined.isoformat(),
                "lastLogin": entity.last_login.isoformat() if entity.last_login else None,
                "version": entity.version,
            },
        }

    def _cache_keys(self, entity: User) -> set[str]:
        profiles = self.domain.profiles.inner.list_for_user(entity.id)
        return self._related_cache_keys(entity, profiles) | {
            self.domain.cache.keys.profiles_of_user(entity.id)
        }


class UserProfileBroker(Broker[UserProfile]):
    kind = "UserProfile"
    entity_type = UserProfile
    manifest_type = UserProfileManifest
    target_argument = "profile"

    def _parts(self, uow: UnitOfWork) -> tuple[User, Account]:
        manifest: UserProfileManifest = self._require_manifest()
        user = uow.users.get_by_username(manifest.spec.username)
        if user is None:
            raise UserNotFound(f"no user {manifest.spec.username!r}")
        account = uow.accounts.get_by_number(manifest.spec.accountNumber)
        if account is None:
            raise AccountNotFound(f"no account {manifest.spec.accountNumber}")
        return user, account

    def _find(self, uow: UnitOfWork) -> UserProfile | None:
        if self.target is not None:
            return uow.profiles.get(self.target.id)
        user, account = self._parts(uow)
        return uow.profiles.get_for(user.id, account.id)

    def _apply(self, uow: UnitOfWork) -> UserProfile:
        manifest: UserProfileManifest = self._require_manifest()
        user, account = self._parts(uow)
        actor = self._require_admin_of(uow, account)
        wanted: dict[str, Any] = {
            "name": manifest.metadata.name,
            "description": manifest.metadata.description,
            "is_test": manifest.spec.isTest,
        }
        profile = uow.profiles.get_for(user.id, account.id)
        if profile is None:
            if not actor.user.is_superuser and uow.profiles.list_for_user(user.id):
                raise PermissionDenied(
                    f"{user.username} belongs to other accounts: only a superuser may enrol it"
                )
            return uow.profiles.add(user_id=user.id, account_id=account.id, **wanted)
        changes = _changed(profile, wanted)
        return uow.profiles.update(profile.id, **changes) if changes else profile

    def _delete(self, uow: UnitOfWork) -> UserProfile:
        profile = self._find(uow)
        if profile is None:
            raise UserProfileNotFound("no such profile")
        self._require_admin_of(uow, profile.account)
        if (
            profile.user.username == SMARTER_ADMIN_USERNAME
            and profile.account.account_number == SMARTER_ACCOUNT_NUMBER
        ):
            raise PermissionDenied("the platform admin's profile cannot be deleted")
        uow.profiles.delete(profile.id)
        return profile

    def _visible(self) -> list[UserProfile]:
        accounts = self._visible_accounts()
        if accounts is None:
            return self.domain.profiles.list_all()
        return self.domain.profiles.list_for_account(accounts[0].id)

    def _named(self, entity: UserProfile, name: str) -> bool:
        return name in (entity.name, f"{entity.user.username}@{entity.account.account_number}")

    def _manifest_of(self, entity: UserProfile) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "metadata": {
                "name": entity.name,
                "description": entity.description,
                "version": "1.0.0",
            },
            "spec": {
                "username": entity.user.username,
                "accountNumber": entity.account.account_number,
                "isTest": entity.is_test,
            },
            "status": {
                "id": entity.id,
                "created": entity.created_at.isoformat(),
                "modified": entity.updated_at.isoformat(),
                "version": entity.version,
            },
        }


BROKERS: dict[str, type[Broker[Any]]] = {
    "Account": AccountBroker,
    "User": UserBroker,
    "UserProfile": UserProfileBroker,
}


def broker_for(domain: Domain, manifest: Manifest, actor: UserProfile) -> Broker[Any]:
    return BROKERS[manifest.kind](domain, actor=actor, manifest=manifest)


def apply_manifests(
    domain: Domain, source: ManifestSource | Sequence[ManifestSource], actor: UserProfile
) -> list[Any]:
    """Apply every document, in order, in one transaction; signals follow the commit."""
    sources: Sequence[ManifestSource] = (
        source if isinstance(source, list | tuple) else [source]  # type: ignore[list-item]
    )
    manifests = [m for s in sources for m in load_manifests(s)]
    brokers = [broker_for(domain, manifest, actor) for manifest in manifests]
    with domain.unit_of_work() as uow:
        entities = [broker._apply(uow) for broker in brokers]
        uow.commit()
    for broker, entity in zip(brokers, entities, strict=True):
        broker._announce(entity, "apply")
    return entities
