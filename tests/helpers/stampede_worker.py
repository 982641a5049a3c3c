"""One process of the cross-process stampede test: N threads miss the same key at once."""

from __future__ import annotations

import sys
import threading
import time

import redis

from smarter_domain import Domain


def main(database_url: str, redis_url: str, threads: int, start_at: float) -> None:
    counter = redis.Redis.from_url(redis_url)
    with Domain(database_url, redis_url) as domain:

        def loader() -> str:
            counter.incr("stampede:loads")
            time.sleep(0.5)
            return "value"

        results: list[object] = []

        def worker() -> None:
            results.append(domain.cache.get_or_load("smarter:v1:stampede", loader))

        pool = [threading.Thread(target=worker) for _ in range(threads)]
        time.sleep(max(0.0, start_at - time.time()))
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
    assert results == ["value"] * threads, results
    print(len(results))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
