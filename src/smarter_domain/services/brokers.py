"""Brokers: apply and delete manifests, with permissions, in one transaction each.

A broker checks the actor's permissions (re-read inside the transaction) before it writes,
writes through a unit of work, and after the commit (which invalidates the cache) sends
``cache_invalidate``. ``apply_manifests`` applies several documents in one transaction.

Permission comes before existence: an actor who is not a superuser learns nothing about
accounts, users and profiles outside their own account. An account number that is not theirs
is refused whether it exists or not, and an entity they cannot see and one that does not exist
raise the same ``PermissionDenied``, with the same message. (Uniqueness alone still tells:
creating a user whose username is taken elsewhere fails.)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from ..model.entities import Account, User, UserProfile
from ..model.errors import (
    AccountNotFound,
    PermissionDenied,
    UserNotFound,
    UserProfileNotFound,
    ValidationError,
)
from ..model.manifests import (
    API_VERSION,
    NAME_PATTERN,
    AccountManifest,
    Manifest,
    UserManifest,
    UserProfileManifest,
    load_manifests,
)
from ..model.platform_account import SMARTER_ACCOUNT_NUMBER, SMARTER_ADMIN_USERNAME
from .signals import cache_invalidate, send_safely
from .unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from .ports import Wiring


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


def _labels(metadata: Any) -> dict[str, Any]:
    """``metadata.tags`` and ``metadata.annotations`` as the entities hold them."""
    return {
        "tags": tuple(metadata.tags),
        "annotations": tuple((key, value) for key, value in metadata.annotations),
    }


def _described_labels(entity: Account | User | UserProfile) -> dict[str, Any]:
    return {"tags": list(entity.tags), "annotations": dict(entity.annotations)}


_NAME = re.compile(NAME_PATTERN)


def _name_for(username: str) -> str:
    """A manifest name for a username: the username itself when it is a valid name."""
    if _NAME.fullmatch(username):
        return username
    name = re.sub(r"[^a-z0-9._-]+", "-", username.lower()).strip("._-")[:63].strip("._-")
    return name or "user"


_READ_ONLY = frozenset({"kind", "entity_type", "manifest_type", "target_argument"})


class Broker(Generic[E]):
    kind: ClassVar[str]
    entity_type: ClassVar[type[Any]]
    manifest_type: ClassVar[type[BaseModel]]
    target_argument: ClassVar[str]

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _READ_ONLY:
            raise AttributeError(f"{type(self).__name__}.{name} is read-only")
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if name in _READ_ONLY:
            raise AttributeError(f"{type(self).__name__}.{name} is read-only")
        super().__delattr__(name)

    def __init__(
        self,
        domain: Wiring,
        *,
        actor: UserProfile,
        manifest: ManifestSource | None = None,
        session: Session | None = None,
        **target: Any,
    ) -> None:
        if not isinstance(actor, UserProfile):
            raise PermissionDenied("a broker acts for a user profile (actor=...)")
        unknown = set(target) - {self.target_argument}
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(unknown)}")
        self.domain = domain
        self.actor = actor
        #: The application's session to work in (``domain.unit_of_work(session=...)``): the
        #: broker's writes join its transaction, and the signal follows its commit.
        self.session = session
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
    def of(
        cls,
        domain: Wiring,
        actor: UserProfile,
        entity: E | None = None,
        *,
        session: Session | None = None,
    ) -> Broker[E]:
        """A broker for ``entity`` (or, with none, for listing with ``get()``)."""
        target: dict[str, Any] = {} if entity is None else {cls.target_argument: entity}
        return cls(domain, actor=actor, session=session, **target)

    # -- public API ---------------------------------------------------------------------

    def apply(self) -> E:
        """Create or update from the manifest, in one transaction; returns the entity. (With
        ``session=``, in a savepoint of the application's transaction: durable, and signalled,
        when the application commits.)"""
        with self._span("apply"), self._unit_of_work() as uow:
            entity = self._apply(uow)
            uow.on_commit(functools.partial(self._announce, entity, "apply"))
            uow.commit()
        return entity

    def delete(self) -> None:
        """Delete the entity (and what the database cascades to), in one transaction."""
        with self._span("delete"), self._unit_of_work() as uow:
            entity = self._delete(uow)
            uow.on_commit(functools.partial(self._announce, entity, "delete"))
            uow.commit()

    def _span(self, action: str) -> AbstractContextManager[Any]:
        """The OpenTelemetry span of this write, when the domain is instrumented
        (``smarter_domain.telemetry``); nothing otherwise."""
        telemetry = getattr(self.domain, "telemetry", None)
        if telemetry is None:
            return nullcontext()
        span: AbstractContextManager[Any] = telemetry.span(
            f"smarter_domain.broker.{action}", **{"smarter_domain.kind": self.kind}
        )
        return span

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
        """The entity the broker is about, or None; never raises not-found."""
        raise NotImplementedError

    def _find_for(self, uow: UnitOfWork, actor: UserProfile) -> E | None:
        """The entity, only if ``actor`` may see it: else None, whether it exists or not."""
        entity = self._find(uow)
        if entity is None or actor.user.is_superuser:
            return entity
        return entity if self._sees(uow, actor, entity) else None

    def _sees(self, uow: UnitOfWork, actor: UserProfile, entity: E) -> bool:
        """Whether a non-superuser ``actor`` sees ``entity`` (their own account's)."""
        raise NotImplementedError

    def _wanted(self) -> str:
        """What the broker was asked about, from its input alone."""
        if self.target is not None:
            return f"with id {self.target.id}"
        return repr(self._wanted_name(self._require_manifest()))

    def _wanted_name(self, manifest: Any) -> str:
        raise NotImplementedError

    def _manifest_of(self, entity: E) -> dict[str, Any]:
        raise NotImplementedError

    def _cache_keys(self, entity: E) -> set[str]:
        return self.domain.cache.keys.for_entity(entity)

    # -- shared -------------------------------------------------------------------------

    def _unit_of_work(self) -> UnitOfWork:
        return self.domain.unit_of_work(session=self.session)

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
        with self._unit_of_work() as uow:
            actor = self._verified_actor(uow)
            entity = self._find_for(uow, actor)
        if entity is None:
            raise self._not_found() if actor.user.is_superuser else self._hidden()
        return entity

    def _hidden(self) -> PermissionDenied:
        """For an actor who is not a superuser: the entity is missing or out of their sight;
        the message is made of the request alone, so the two cannot be told apart."""
        return PermissionDenied(
            f"{self.kind} {self._wanted()} does not exist or is not visible to {self._actor_name()}"
        )

    def _target_account(
        self, uow: UnitOfWork, number: str | None, actor: UserProfile | None = None
    ) -> tuple[UserProfile, Account]:
        """The actor (checked against the database) and the account ``number`` names (None:
        the actor's own), which they must administer. Permission comes first: for anyone but a
        superuser, a number that is not their own account is refused unlooked-up."""
        actor = actor or self._verified_actor(uow)
        if not number or number == actor.account.account_number:
            account = actor.account
        elif not actor.user.is_superuser:
            raise self._not_admin_of(number)
        else:
            found = uow.accounts.get_by_number(number)
            if found is None:
                raise AccountNotFound(f"no account {number}")
            account = found
        return self._require_admin_of(uow, account, actor), account

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

    def _require_admin_of(
        self, uow: UnitOfWork, account: Account, actor: UserProfile | None = None
    ) -> UserProfile:
        """A superuser, or a staff member of ``account``."""
        actor = actor or self._verified_actor(uow)
        if actor.user.is_superuser or (actor.user.is_staff and actor.account.id == account.id):
            return actor
        raise self._not_admin_of(account.account_number)

    def _not_admin_of(self, account_number: str) -> PermissionDenied:
        return PermissionDenied(
            f"{self._actor_name()} may not change {self.kind}s of account {account_number}"
        )

    def _refuse_superuser(self, actor: UserProfile, user: User) -> None:
        """Only a superuser may create, change or delete a superuser's profile."""
        if user.is_superuser and not actor.user.is_superuser:
            raise PermissionDenied(f"only a superuser may change a superuser's {self.kind}")

    def _visible_accounts(self) -> list[Account] | None:
        """None: every account (superuser); else the actor's own."""
        with self._unit_of_work() as uow:
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
        if len(named) > 1:  # only a superuser gets here: others see their own account only
            raise ValidationError(
                "ambiguous account",
                {"metadata.accountNumber": f"several are named {manifest.metadata.name!r}"},
            )
        return named[0] if named else None

    def _find_for(self, uow: UnitOfWork, actor: UserProfile) -> Account | None:
        if actor.user.is_superuser:
            return self._find(uow)
        own = actor.account
        if self.target is not None:
            return own if self.target.id == own.id else None
        manifest: AccountManifest = self._require_manifest()
        number = manifest.metadata.accountNumber
        if number:
            return own if number == own.account_number else None
        return own if manifest.metadata.name == own.name else None

    def _wanted_name(self, manifest: AccountManifest) -> str:
        return manifest.metadata.accountNumber or manifest.metadata.name

    def _apply(self, uow: UnitOfWork) -> Account:
        manifest: AccountManifest = self._require_manifest()
        self._require_superuser(uow)
        config = manifest.spec.config
        wanted: dict[str, Any] = {
            attribute: getattr(config, field) for field, attribute in ACCOUNT_CONFIG_FIELDS.items()
        }
        wanted["name"] = manifest.metadata.name
        wanted["description"] = manifest.metadata.description
        wanted.update(_labels(manifest.metadata))
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
                **_described_labels(entity),
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

    def _account(self, uow: UnitOfWork) -> tuple[UserProfile, Account]:
        """The actor and the account the user manifest is about (spec.accountNumber, else the
        actor's), which the actor must administer: checked before anything is looked up."""
        number = self.manifest.spec.accountNumber if self.manifest is not None else None
        return self._target_account(uow, number)

    def _find(self, uow: UnitOfWork) -> User | None:
        if self.target is not None:
            return uow.users.get(self.target.id)
        manifest: UserManifest = self._require_manifest()
        return uow.users.get_by_username(manifest.username)

    def _sees(self, uow: UnitOfWork, actor: UserProfile, entity: User) -> bool:
        return uow.profiles.get_for(entity.id, actor.account.id) is not None

    def _wanted_name(self, manifest: UserManifest) -> str:
        return manifest.username

    def _check_may_change(self, uow: UnitOfWork, actor: UserProfile, user: User) -> None:
        """A user is global: staff may change one only if it belongs to their account alone."""
        if actor.user.is_superuser:
            return
        accounts = {p.account.id for p in uow.profiles.list_for_user(user.id)}
        if actor.account.id not in accounts:
            # Out of the actor's sight: say only what uniqueness says anyway, that it is taken.
            raise PermissionDenied(
                f"the username {user.username!r} is taken: only a superuser may change that user"
            )
        if user.is_superuser:
            raise PermissionDenied("only a superuser may change a superuser")
        if accounts != {actor.account.id}:
            raise PermissionDenied(
                f"{user.username} belongs to other accounts: only a superuser may change it"
            )

    def _apply(self, uow: UnitOfWork) -> User:
        manifest: UserManifest = self._require_manifest()
        actor, account = self._account(uow)
        if not actor.user.is_superuser and RESERVED_USERNAME.fullmatch(manifest.username):
            raise PermissionDenied(f"{manifest.username!r} is reserved for an account's admin")
        config = manifest.spec.config
        wanted: dict[str, Any] = {
            attribute: getattr(config, field) for field, attribute in USER_CONFIG_FIELDS.items()
        }
        wanted["email"] = wanted["email"] or ""
        wanted.update(_labels(manifest.metadata))
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
        actor, _ = self._account(uow)
        user = self._find_for(uow, actor)
        if user is None:
            raise UserNotFound("no such user") if actor.user.is_superuser else self._hidden()
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
        """The user itself. spec.accountNumber is an account the user already belongs to (the
        actor's when it is one of them), so applying this back changes nothing."""
        accounts = [p.account for p in self.domain.profiles.inner.list_for_user(entity.id)]
        own = [a for a in accounts if a.id == self.actor.account.id]
        account = next(iter(own or accounts), None)
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "metadata": {
                "name": _name_for(entity.username),
                "description": "",
                "version": "1.0.0",
                "username": entity.username,
                **_described_labels(entity),
            },
            "spec": {
                "accountNumber": account.account_number if account is not None else None,
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

    def _find(self, uow: UnitOfWork) -> UserProfile | None:
        if self.target is not None:
            return uow.profiles.get(self.target.id)
        manifest: UserProfileManifest = self._require_manifest()
        user = uow.users.get_by_username(manifest.spec.username)
        account = uow.accounts.get_by_number(manifest.spec.accountNumber)
        if user is None or account is None:
            return None
        return uow.profiles.get_for(user.id, account.id)

    def _sees(self, uow: UnitOfWork, actor: UserProfile, entity: UserProfile) -> bool:
        return entity.account.id == actor.account.id

    def _wanted_name(self, manifest: UserProfileManifest) -> str:
        return f"{manifest.spec.username}@{manifest.spec.accountNumber}"

    def _apply(self, uow: UnitOfWork) -> UserProfile:
        manifest: UserProfileManifest = self._require_manifest()
        username = manifest.spec.username
        actor = self._verified_actor(uow)
        user = uow.users.get_by_username(username) if actor.user.is_superuser else None
        if actor.user.is_superuser and user is None:
            raise UserNotFound(f"no user {username!r}")  # a superuser may know
        actor, account = self._target_account(uow, manifest.spec.accountNumber, actor)
        user = user or uow.users.get_by_username(username)
        wanted: dict[str, Any] = {
            "name": manifest.metadata.name,
            "description": manifest.metadata.description,
            "is_test": manifest.spec.isTest,
            **_labels(manifest.metadata),
        }
        profile = None if user is None else uow.profiles.get_for(user.id, account.id)
        if profile is None:
            if not actor.user.is_superuser and (
                user is None or user.is_superuser or uow.profiles.list_for_user(user.id)
            ):
                # Missing, a superuser, or a member elsewhere: one answer for all three.
                raise PermissionDenied(
                    f"{self._actor_name()} may not enrol {username!r} in account "
                    f"{account.account_number}: there is no such user, or only a superuser "
                    "may enrol it"
                )
            assert user is not None
            return uow.profiles.add(user_id=user.id, account_id=account.id, **wanted)
        self._refuse_superuser(actor, profile.user)
        changes = _changed(profile, wanted)
        return uow.profiles.update(profile.id, **changes) if changes else profile

    def _delete(self, uow: UnitOfWork) -> UserProfile:
        if self.target is None:
            manifest: UserProfileManifest = self._require_manifest()
            actor, _ = self._target_account(uow, manifest.spec.accountNumber)
        else:
            actor = self._verified_actor(uow)
        profile = self._find_for(uow, actor)
        if profile is None:
            if not actor.user.is_superuser:
                raise self._hidden()
            if self.target is None and uow.users.get_by_username(manifest.spec.username) is None:
                raise UserNotFound(f"no user {manifest.spec.username!r}")
            raise UserProfileNotFound("no such profile")
        self._require_admin_of(uow, profile.account, actor)
        self._refuse_superuser(actor, profile.user)
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
                **_described_labels(entity),
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


def broker_for(
    domain: Wiring, manifest: Manifest, actor: UserProfile, session: Session | None = None
) -> Broker[Any]:
    return BROKERS[manifest.kind](domain, actor=actor, manifest=manifest, session=session)


def apply_manifests(
    domain: Wiring,
    source: ManifestSource | Sequence[ManifestSource],
    actor: UserProfile,
    session: Session | None = None,
) -> list[Any]:
    """Apply every document, in order, in one transaction; signals follow the commit.
    With ``session=``, in one savepoint of the application's transaction."""
    sources: Sequence[ManifestSource] = (
        source if isinstance(source, list | tuple) else [source]  # type: ignore[list-item]
    )
    manifests = [m for s in sources for m in load_manifests(s)]
    brokers = [broker_for(domain, manifest, actor, session) for manifest in manifests]
    with domain.unit_of_work(session=session) as uow:
        entities = [broker._apply(uow) for broker in brokers]
        for broker, entity in zip(brokers, entities, strict=True):
            uow.on_commit(functools.partial(broker._announce, entity, "apply"))
        uow.commit()
    return entities
