from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

import smarter_domain as sd
from smarter_domain import Change, Domain
from smarter_domain.testing import AccountFactory, UserFactory, UserProfileFactory


def test_commit_publishes_changes_after_commit(domain: Domain) -> None:
    published: list[Sequence[Change]] = []

    def hook(changes: Sequence[Change]) -> None:
        # The write is visible to a separate session by the time hooks run.
        assert domain.users.get_by_username("jdoe") is not None
        published.append(changes)

    domain.on_commit(hook)
    with domain.unit_of_work() as uow:
        account = uow.accounts.add(name="acme")
        user = uow.users.add(username="jdoe")
        profile = uow.profiles.add(user_id=user.id, account_id=account.id)
        assert published == []
        uow.commit()
    assert len(published) == 1
    assert [(c.action, c.entity) for c in published[0]] == [
        ("create", account),
        ("create", user),
        ("create", profile),
    ]


def test_leaving_without_commit_rolls_back_and_publishes_nothing(domain: Domain) -> None:
    published: list[Sequence[Change]] = []
    domain.on_commit(published.append)
    with domain.unit_of_work() as uow:
        uow.users.add(username="ghost")
        assert uow.users.get_by_username("ghost") is not None  # visible inside the unit
    assert domain.users.get_by_username("ghost") is None
    assert published == []


def test_an_error_midway_leaves_nothing_half_written(domain: Domain) -> None:
    UserFactory(username="taken")
    with domain.unit_of_work() as uow:
        uow.accounts.add(name="acme")
        with pytest.raises(sd.ConflictError):
            uow.users.add(username="taken")
    assert domain.accounts.list_all() == []


def test_update_and_delete_changes_carry_before_and_after(domain: Domain) -> None:
    profile = UserProfileFactory()
    published: list[Sequence[Change]] = []
    domain.on_commit(published.append)
    updated = domain.users.update(profile.user.id, first_name="Jane")
    assert published[-1] == (Change("update", profile.user, updated),)
    domain.users.delete(profile.user.id)
    deletes = published[-1]
    assert [c.action for c in deletes] == ["delete", "delete"]
    assert deletes[0].before is not None and deletes[0].before.id == profile.id  # cascade
    assert deletes[1].before == updated


def test_a_failing_hook_is_logged_and_does_not_undo_the_write(
    domain: Domain, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(changes: Sequence[Change]) -> None:
        raise RuntimeError("boom")

    seen: list[Sequence[Change]] = []
    domain.on_commit(broken)
    domain.on_commit(seen.append)
    with caplog.at_level(logging.ERROR, logger="smarter_domain"):
        account = AccountFactory()
    assert domain.accounts.get(account.id) == account
    assert len(seen) == 1  # later hooks still run
    assert "after-commit hook" in caplog.text


def test_commit_returns_changes_and_resets(domain: Domain) -> None:
    with domain.unit_of_work() as uow:
        uow.users.add(username="a")
        assert len(uow.pending_changes) == 1
        assert len(uow.commit()) == 1
        assert uow.pending_changes == ()
        uow.users.add(username="b")
        uow.commit()
    assert domain.users.get_by_username("b") is not None
