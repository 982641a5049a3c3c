"""Cache keys: one entry per entity under its id; secondary lookups and lists hold ids.

Every key starts with the domain's namespace, so applications sharing one Redis do not meet.
A write's ``Change`` names every key it makes stale (``keys_for_change``).
"""

from __future__ import annotations

import hashlib
import re
import uuid

from ..model.changes import Change
from ..model.entities import Account, User, UserProfile
from ..model.errors import ConfigurationError

DEFAULT_NAMESPACE = "smarter:v1"


def _part(text: str) -> str:
    """A key component; long or odd strings (lookups may get anything) become a digest."""
    if len(text) > 128:
        return _digest(text)
    return _short_part(text)


def _short_part(text: str) -> str:
    # Four substring searches and one scan, in C: cheaper than a memo's lookup would be worth
    # (and a memo costs ~130 bytes a name, as much as the cache entry it keys).
    if (
        text.isprintable()
        and " " not in text
        and "{" not in text
        and "}" not in text
        and "#" not in text
    ):
        return text
    return _digest(text)


# A space would split a key in logs and tools; a brace would make a Redis Cluster hash tag,
# and the generation tokens rely on keys having none (``scripts.generation_key``); ``#``
# starts the suffixes of the library's own keys (``#gen{...}``, ``#lock``), so no part may
# hold one (a digest starts with it, and is fixed-length hex).
_UNSAFE = frozenset(" {}#")


def _digest(text: str) -> str:
    return "#" + hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class CacheKeys:
    def __init__(self, namespace: str = DEFAULT_NAMESPACE) -> None:
        if not namespace or not namespace.isprintable() or _UNSAFE & set(namespace):
            raise ConfigurationError(
                f"cache namespace {namespace!r} must be printable, without spaces or braces"
            )
        self.namespace = namespace
        ns = namespace
        self._account = f"{ns}:account:"
        self._account_number = f"{ns}:account-number:"
        self._user = f"{ns}:user:"
        self._username = f"{ns}:username:"
        self._profile = f"{ns}:profile:"
        self._profile_for = f"{ns}:profile-for:"
        self._function = f"{ns}:fn:"
        self._ack = f"{ns}:ack:"
        self._ack_pattern = re.compile(re.escape(self._ack) + r"[0-9a-f]{32}", re.ASCII)

    def kind_of(self, key: str) -> str:
        """What a key of this namespace is about (``user``, ``username``, ``fn``...), for logs
        and telemetry: never the personal data after it. ``foreign`` for another key."""
        prefix = self.namespace + ":"
        if not isinstance(key, str) or not key.startswith(prefix):
            return "foreign"
        rest = key[len(prefix) :]
        kind = re.split(r"[:#{]", rest, maxsplit=1)[0]
        return kind if kind.replace("-", "").isalpha() and len(kind) <= 32 else "other"

    def account(self, account_id: int) -> str:
        return f"{self._account}{account_id}"

    def account_by_number(self, account_number: str) -> str:
        return self._account_number + _part(account_number)

    def default_account(self) -> str:
        return f"{self.namespace}:default-account"

    def all_accounts(self) -> str:
        return f"{self.namespace}:accounts"

    def user(self, user_id: int) -> str:
        return f"{self._user}{user_id}"

    def user_by_username(self, username: str) -> str:
        return self._username + _part(username)

    def users_of_account(self, account_id: int) -> str:
        return f"{self._account}{account_id}:users"

    def profile(self, profile_id: int) -> str:
        return f"{self._profile}{profile_id}"

    def profile_for(self, user_id: int, account_id: int) -> str:
        return f"{self._profile_for}{user_id}:{account_id}"

    def profiles_of_account(self, account_id: int) -> str:
        return f"{self._account}{account_id}:profiles"

    def profiles_of_user(self, user_id: int) -> str:
        return f"{self._user}{user_id}:profiles"

    def function(self, qualified_name: str, arguments: str) -> str:
        if _UNSAFE & set(arguments):  # JSON of a dict or a string with spaces
            arguments = _digest(arguments)
        return f"{self._function}{qualified_name}:{arguments}"

    def channel(self) -> str:
        """The pub/sub channel invalidations of this namespace are published on."""
        return f"{self.namespace}:invalidations"

    def new_ack(self) -> str:
        """A fresh key naming one invalidation's acknowledgements (``scripts.ack_keys``)."""
        return self._ack + uuid.uuid4().hex

    def is_ack(self, key: str) -> bool:
        """Whether ``key`` is one ``new_ack`` could have made: the only keys (with those
        ``scripts.ack_keys`` derives from it) a listener writes to, whatever a (possibly
        forged) message names."""
        return self._ack_pattern.fullmatch(key) is not None

    def pattern(self) -> str:
        """A glob for every key of this namespace."""
        return f"{self.namespace}:*"

    def for_entity(self, entity: Account | User | UserProfile) -> set[str]:
        if isinstance(entity, Account):
            return {
                self.account(entity.id),
                self.account_by_number(entity.account_number),
                self.default_account(),
                self.all_accounts(),
            }
        if isinstance(entity, User):
            return {self.user(entity.id), self.user_by_username(entity.username)}
        return {
            self.profile(entity.id),
            self.profile_for(entity.user.id, entity.account.id),
            self.profiles_of_account(entity.account.id),
            self.profiles_of_user(entity.user.id),
            self.users_of_account(entity.account.id),
        }

    def for_change(self, change: Change) -> set[str]:
        keys: set[str] = set()
        for side in (change.before, change.after):
            if side is not None:
                keys |= self.for_entity(side)
        return keys
