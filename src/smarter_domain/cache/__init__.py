"""The two-tier cache: dogpile regions (memory, Redis), typed serialization, cached
repositories and memoized functions (``CachedFunction``, made by ``cache_results``)."""

from .keys import CacheKeys
from .regions import RedisOptions, memory_region, redis_region
from .repositories import (
    CachedAccountRepository,
    CachedUserProfileRepository,
    CachedUserRepository,
)
from .results import CachedFunction
from .stats import CacheStats
from .tiered import TieredCache

__all__ = [
    "CacheKeys",
    "CacheStats",
    "CachedAccountRepository",
    "CachedFunction",
    "CachedUserProfileRepository",
    "CachedUserRepository",
    "RedisOptions",
    "TieredCache",
    "memory_region",
    "redis_region",
]
