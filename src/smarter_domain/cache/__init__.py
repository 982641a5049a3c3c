"""The two-tier cache: dogpile regions (memory, Redis), typed serialization, cached
repositories and memoized functions (``CachedFunction``, made by ``cache_results``)."""

from .keys import CacheKeys
from .options import RedisOptions, memory_region
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
]  # (and ``redis_region``, which needs redis-py: an attribute, kept out of ``import *``)


def __getattr__(name: str) -> object:
    """``redis_region``, imported on first use: it needs redis-py (the ``redis`` extra)."""
    if name == "redis_region":
        try:
            from .regions import redis_region
        except ImportError as exc:
            from ..model.errors import ConfigurationError

            raise ConfigurationError(
                f"a Redis tier needs redis-py ({exc.name}): pip install 'smarter-domain[redis]'"
            ) from exc
        return redis_region
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
