"""The acting user: from the name an application authenticated to the profile a broker acts as.

Brokers act for a ``UserProfile`` (a user in one account), while applications know who is
logged in by username. ``find_actor`` is that step, with the rules the CLI's ``--as`` has
always used, and typed errors a web handler can map to 401/403 without parsing messages.
``actors_async`` (over async repositories) is the source of ``actors`` (generated from it).
"""

from __future__ import annotations

from smarter_domain.model.repositories_async import (
    AsyncAccountRepository,
    AsyncUserProfileRepository,
    AsyncUserRepository,
)

from ..model.entities import UserProfile
from ..model.errors import PermissionDenied, UserNotFound, ValidationError
from ..model.platform_account import SMARTER_ACCOUNT_NUMBER


async def find_actor(
    users: AsyncUserRepository,
    profiles: AsyncUserProfileRepository,
    accounts: AsyncAccountRepository,
    username: str,
    account_number: str | None = None,
) -> UserProfile:
    """The profile ``username`` acts as: in ``account_number``'s account when given, else in
    the platform account if they belong to it, else their oldest profile.

    Raises ``UserNotFound`` (no such user), ``PermissionDenied`` (the user is inactive, or is
    not a member of the account named, whether that account exists or not: a caller cannot
    probe for accounts), ``ValidationError`` (arguments of the wrong type).
    """
    if not isinstance(username, str):
        raise ValidationError("the actor's username must be a string", {"username": "not a str"})
    if account_number is not None and not isinstance(account_number, str):
        raise ValidationError(
            "the account number must be a string", {"account_number": "not a str"}
        )
    user = await users.get_by_username(username)
    if user is None:
        raise UserNotFound(f"no user {username!r}")
    if not user.is_active:
        raise PermissionDenied(f"user {username!r} is inactive")
    if account_number is not None:
        account = await accounts.get_by_number(account_number)
        profile = await profiles.get_for(user.id, account.id) if account is not None else None
        if profile is None:
            raise PermissionDenied(f"user {username!r} is not a member of {account_number!r}")
        return profile
    memberships = await profiles.list_for_user(user.id)
    if not memberships:
        raise PermissionDenied(f"user {username!r} belongs to no account")
    platform = [p for p in memberships if p.account.account_number == SMARTER_ACCOUNT_NUMBER]
    return (platform or memberships)[0]
