"""Settings of a Domain, and how they are read from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .model.errors import ConfigurationError

DEFAULT_DATABASE_URL = "sqlite:///smarter_domain.db"
DEFAULT_CACHE_TTL = 600

ENV_DATABASE_URL = "SMARTER_DATABASE_URL"
ENV_REDIS_URL = "SMARTER_REDIS_URL"
ENV_CACHE_TTL = "SMARTER_CACHE_TTL"


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    cache_ttl: int = DEFAULT_CACHE_TTL

    def __post_init__(self) -> None:
        if not isinstance(self.database_url, str) or not self.database_url:
            raise ConfigurationError("database_url must be a non-empty string")
        if self.redis_url is not None and not isinstance(self.redis_url, str):
            raise ConfigurationError("redis_url must be a string or None")
        if isinstance(self.cache_ttl, bool) or not isinstance(self.cache_ttl, int):
            raise ConfigurationError(f"cache_ttl must be an int, got {self.cache_ttl!r}")
        if self.cache_ttl <= 0:
            raise ConfigurationError(f"cache_ttl must be positive, got {self.cache_ttl}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        raw_ttl = env.get(ENV_CACHE_TTL, "").strip()
        try:
            ttl = int(raw_ttl) if raw_ttl else DEFAULT_CACHE_TTL
        except ValueError:
            raise ConfigurationError(
                f"{ENV_CACHE_TTL} must be an integer, got {raw_ttl!r}"
            ) from None
        return cls(
            database_url=env.get(ENV_DATABASE_URL) or DEFAULT_DATABASE_URL,
            redis_url=env.get(ENV_REDIS_URL) or None,
            cache_ttl=ttl,
        )
