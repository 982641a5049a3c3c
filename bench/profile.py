"""Where the hot paths spend their time: pyinstrument over the memory-tier hit, the SQLite
miss and the Redis-tier hit of ``get_cached_user_for_username``, the cold miss of
``users.get`` (nothing cached in any tier) and a list of 1,000 members read from Redis (memory
tier cold).

    nox -s profile          (or: pip install pyinstrument && python bench/profile.py)

Prints one call tree per path (frames under 2% hidden). This is how the figures of
``nox -s bench`` were chased; it asserts nothing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import redis
from pyinstrument import Profiler
from run import add_members

import smarter_domain as sd
from smarter_domain.testing import RedisServer

CALLS = {
    "memory-tier hit": 200_000,
    "SQLite miss": 3_000,
    "Redis-tier hit": 3_000,
    "cold miss (SQLite + Redis)": 2_000,
    "list of 1,000 from Redis": 100,
}


def profile(title: str, call: Callable[[], Any], before: Callable[[], Any]) -> None:
    for _ in range(200):
        before()
        call()
    profiler = Profiler(interval=0.0002)
    with profiler:
        for _ in range(CALLS[title]):
            before()
            call()
    print(f"\n===== {title} ({CALLS[title]:,} calls) =====")
    print(profiler.output_text(color=False, show_all=False, time="percent_of_total"))


def main() -> None:
    with RedisServer() as redis_server, tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/profile.db"
        with sd.Domain(url) as setup:
            setup.migrate()
            setup.bootstrap()
        with sd.Domain(url) as domain:
            user = domain.users.get_by_username("admin")
            assert user is not None
            keys = [domain.cache.keys.user_by_username("admin"), domain.cache.keys.user(user.id)]
            lookup = lambda: domain.utils.get_cached_user_for_username("admin")  # noqa: E731
            profile("memory-tier hit", lookup, lambda: None)
            profile("SQLite miss", lookup, lambda: domain.cache.drop_local(keys))
        with sd.Domain(url, redis_server.url) as domain:
            lookup = lambda: domain.utils.get_cached_user_for_username("admin")  # noqa: E731
            lookup()
            profile("Redis-tier hit", lookup, domain.cache.clear_memory)
            user = domain.users.get_by_username("admin")
            assert user is not None
            key = domain.cache.keys.user(user.id)
            client = redis.Redis.from_url(redis_server.url)

            def forget() -> None:
                client.delete(key)
                domain.cache.drop_local([key])

            profile("cold miss (SQLite + Redis)", lambda: domain.users.get(user.id), forget)
            account = domain.accounts.add(name="members", account_number="5555-5555-5555")
            add_members(domain, account, 1000, "member")
            members = lambda: domain.users.list_for_account(account.id)  # noqa: E731
            profile("list of 1,000 from Redis", members, domain.cache.clear_memory)
            client.close()


if __name__ == "__main__":
    main()
