"""What the cache stores for a profile: its own fields and the ids it points to. The user and
account are hydrated from their own entries, so a change to either shows in every profile."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..model.entities import Account, User, UserProfile


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileRecord:
    id: int
    user_id: int
    account_id: int
    created_at: datetime
    updated_at: datetime
    name: str
    description: str
    is_test: bool
    version: int
    tags: tuple[str, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, profile: UserProfile) -> ProfileRecord:
        return cls(
            id=profile.id,
            user_id=profile.user.id,
            account_id=profile.account.id,
            created_at=profile.created_at,
            updated_at=profile.updated_at,
            name=profile.name,
            description=profile.description,
            is_test=profile.is_test,
            version=profile.version,
            tags=profile.tags,
            annotations=profile.annotations,
        )

    def hydrate(self, user: User, account: Account) -> UserProfile:
        return UserProfile(
            id=self.id,
            user=user,
            account=account,
            created_at=self.created_at,
            updated_at=self.updated_at,
            name=self.name,
            description=self.description,
            is_test=self.is_test,
            version=self.version,
            tags=self.tags,
            annotations=self.annotations,
        )
