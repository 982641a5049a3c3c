"""factory-boy factories that create entities through a Domain's repositories.

They use the Domain given as ``domain=`` or else the process default (which the ``domain``
pytest fixture installs), so ``UserProfileFactory()`` makes a user, an account and the
profile joining them, each in its own committed write.
"""

from __future__ import annotations

from typing import Any

import factory

from ..domain import Domain, get_domain
from ..model.entities import Account, User, UserProfile


class _DomainFactory(factory.Factory):  # type: ignore[misc]
    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class: type[Any], *args: Any, **kwargs: Any) -> Any:
        domain: Domain = kwargs.pop("domain", None) or get_domain()
        return cls._persist(domain, **kwargs)

    @classmethod
    def _build(cls, model_class: type[Any], *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{cls.__name__} only creates: entities exist once they are stored")

    @classmethod
    def _persist(cls, domain: Domain, **kwargs: Any) -> Any:
        raise NotImplementedError


class AccountFactory(_DomainFactory):
    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"account-{n}")
    description = factory.Faker("catch_phrase")
    company_name = factory.Faker("company")
    phone_number = "+1 617 555 0100"
    city = factory.Faker("city")
    country = "US"
    language = "en-US"
    timezone = "America/New_York"
    currency = "USD"

    @classmethod
    def _persist(cls, domain: Domain, **kwargs: Any) -> Account:
        return domain.accounts.add(**kwargs)


class UserFactory(_DomainFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")

    @classmethod
    def _persist(cls, domain: Domain, **kwargs: Any) -> User:
        return domain.users.add(**kwargs)


class UserProfileFactory(_DomainFactory):
    class Meta:
        model = UserProfile

    user = factory.SubFactory(UserFactory)
    account = factory.SubFactory(AccountFactory)
    name = factory.LazyAttribute(lambda o: f"{o.user.username}-{o.account.name}")

    @classmethod
    def _persist(cls, domain: Domain, **kwargs: Any) -> UserProfile:
        user: User = kwargs.pop("user")
        account: Account = kwargs.pop("account")
        return domain.profiles.add(user_id=user.id, account_id=account.id, **kwargs)
