"""The library's error hierarchy: every error a caller can act on derives from SmarterError."""

from __future__ import annotations

from collections.abc import Mapping


class SmarterError(Exception):
    """Base of every error raised on purpose by smarter_domain."""


class NotFoundError(SmarterError, LookupError):
    """A lookup by identity found nothing."""


class AccountNotFound(NotFoundError):
    pass


class UserNotFound(NotFoundError):
    pass


class UserProfileNotFound(NotFoundError):
    pass


class ValidationError(SmarterError, ValueError):
    """Bad input. ``errors`` maps each bad field to what is wrong with it."""

    def __init__(self, message: str, errors: Mapping[str, str] | None = None) -> None:
        self.errors: dict[str, str] = dict(errors or {})
        if self.errors:
            details = "; ".join(f"{field}: {problem}" for field, problem in self.errors.items())
            message = f"{message} ({details})"
        super().__init__(message)


class ConflictError(ValidationError):
    """The write would break a uniqueness rule the database enforces."""


class ConfigurationError(SmarterError):
    """The domain is not set up the way the call needs (bad settings, not bootstrapped)."""


class PermissionDenied(SmarterError):
    """The actor may not do this."""


class CacheUnavailable(SmarterError):
    """A write refused before its commit: with ``consistency="strict"`` (the default) every
    write must reach the Redis tier before it commits, so that no process can serve the old
    value after it returns, and Redis could not be reached. Nothing was committed; retry, or
    choose ``Domain(consistency="available")`` to trade that guarantee for availability."""


class DatabaseError(SmarterError):
    """The database could not do what was asked: unreachable, timed out, or it refused the
    statement. The driver's exception is chained as ``__cause__``."""


class NotMigratedError(DatabaseError):
    """The database has no smarter-domain schema, or an older one: run the migrations
    (``domain.migrate()`` or ``smarter-domain migrate``)."""
