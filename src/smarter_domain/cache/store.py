"""The memory tier's store: dogpile's memory backend keeps its entries here (``cache_dict=``),
and ``TieredCache`` reads and fills it directly on its hot paths.

Bounded, and an approximate LRU in two generations of plain dicts: new entries go into the
young one; when it holds half the size, it becomes the old one and the previous old one is
dropped, unless its entries were read meanwhile (a read of an old entry moves it back to the
young one). So a hit is one dict lookup (an ``OrderedDict`` would also move the entry to its
end, and keep a linked node per entry: about 65 bytes an entry that this does without), and
what is dropped is what nobody read during the last half-size of fills.

An entry is dogpile's ``CachedValue`` whose metadata is a ``Stamp``: the creation time as a
float (the hit path compares it with the clock directly), readable as dogpile's
``{"ct": ..., "v": ...}``, and shared by every entry stored in the same tenth of a second: an
entry costs one 2-tuple, where dogpile's costs a tuple, a dict and a float. (A list's members,
stored in bulk, are plain tuples of the same two items, built three times faster; dogpile
gets them as ``CachedValue``s.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from itertools import repeat
from typing import Any

from dogpile.cache.api import CachedValue
from dogpile.cache.region import value_version


class Stamp(float):
    """An entry's creation time (seconds since the epoch), which dogpile reads as its
    metadata: ``stamp["ct"]``, ``stamp["v"]``."""

    __slots__ = ()

    def __getitem__(self, name: str) -> float | int:
        if name == "ct":
            return float(self)
        if name == "v":
            return value_version
        raise KeyError(name)


def as_cached(entry: Any) -> Any:
    """An entry as dogpile reads it: a ``CachedValue`` (``store`` keeps plain tuples, the same
    two items built faster in bulk; the hot paths read both alike)."""
    return entry if type(entry) is CachedValue else tuple.__new__(CachedValue, entry)


def stamped(entry: Any) -> Any:
    """A ``CachedValue`` with a ``Stamp`` (one dogpile's region made carries a dict)."""
    metadata: Any = entry[1]
    if type(metadata) is Stamp:
        return entry
    return tuple.__new__(CachedValue, (entry[0], Stamp(metadata["ct"])))


class MemoryStore(MutableMapping[str, Any]):
    """``young`` and ``old`` are read without the lock by the hit path (each dict operation is
    atomic under the GIL; an entry is an immutable tuple); every change takes it."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 2:
            raise ValueError("maxsize must be at least 2")
        self.maxsize = maxsize
        self._half = maxsize // 2
        self.young: dict[str, Any] = {}
        self.old: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- the hit path -----------------------------------------------------------------

    def lookup(self, key: str) -> Any:
        """The entry under ``key`` (None if there is none), moved to the young generation if
        it was in the old one."""
        entry = self.young.get(key)
        return entry if entry is not None else self.from_old(key)

    def from_old(self, key: str) -> Any:
        """The entry under ``key`` in the old generation (None if none there), moved to the
        young one: for a caller that just missed it in the young one."""
        entry = self.old.get(key)
        if entry is not None:
            self.promote(key, entry)
        return entry

    def promote(self, key: str, entry: Any) -> None:
        """Move ``entry``, just read in the old generation, to the young one: unless it was
        dropped or replaced meanwhile (an invalidation wins)."""
        with self._lock:
            if self.old.get(key) is entry:
                del self.old[key]
                self._insert(key, entry)

    # -- changes (under the lock) -------------------------------------------------------

    def link(self, key: str, target: str, entity_id: int, within: float) -> None:
        """Replace ``key``'s entry (``(entity_id, stamp)``) with ``target``'s (an entity whose
        id is ``entity_id``), if both are there and the entity's was not stamped ``within``
        seconds or more after the key's (an older stamp only makes the key expire sooner)."""
        with self._lock:
            young, old = self.young, self.old
            ref = young.get(key) or old.get(key)
            entry = young.get(target) or old.get(target)
            if (
                ref is None
                or entry is None
                or ref[0] != entity_id
                or type(ref[0]) is not int
                or getattr(entry[0], "id", None) != entity_id
                or not entry[1] - ref[1] < within
            ):
                return
            self._insert(key, entry)  # an older entry of the key in ``old``: as in ``put``

    def _insert(self, key: str, entry: Any) -> None:
        young = self.young
        young[key] = entry
        if len(young) >= self._half:
            self.old, self.young = young, {}

    def put(self, key: str, entry: Any) -> None:
        """One entry (a ``CachedValue`` with a ``Stamp``). An older entry of the key in the
        old generation may stay there: the young one is always read first, ``pop`` removes
        both, and a rotation drops the old generation."""
        with self._lock:
            self._insert(key, entry)

    def put_if(self, key: str, entry: Any, current: Callable[[], bool]) -> bool:
        """``put``, if ``current()`` says so, asked under the lock (where an invalidation
        deletes: so it deletes what this stored, or this sees it). Whether it stored."""
        with self._lock:
            if not current():
                return False
            self._insert(key, entry)
            return True

    def store(
        self, keys: Sequence[str], values: Sequence[Any], stamp: Stamp, current: Callable[[], bool]
    ) -> None:
        """``values[i]`` under ``keys[i]``, all stamped ``stamp``, under one lock, if
        ``current()`` (as ``put_if``)."""
        with self._lock:
            if not current():
                return
            young, half = self.young, self._half
            if len(young) + len(keys) < half:  # no rotation: in one pass of C
                entries = zip(values, repeat(stamp))  # plain tuples (``as_cached``)
                young.update(zip(keys, entries, strict=False))  # ``repeat`` has no end
                return
            for key, value in zip(keys, values, strict=True):
                young[key] = (value, stamp)
                if len(young) >= half:
                    self.old, self.young = young, {}
                    young = self.young

    def pop(self, key: str, default: Any = None) -> Any:
        with self._lock:
            young = self.young.pop(key, None)
            old = self.old.pop(key, None)
        found = young if young is not None else old
        return default if found is None else found

    def clear(self) -> None:
        with self._lock:
            self.young, self.old = {}, {}

    def after_fork_in_child(self) -> None:
        """In a forked child (``forking``): a new lock, since a thread of the parent (which
        does not exist here) may have held the old one at the fork. The entries are left as
        they are: every dict operation is atomic under the GIL, so the fork cannot catch one
        half done."""
        self._lock = threading.Lock()

    # -- the mapping dogpile's memory backend uses ------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        entry = self.lookup(key)
        return default if entry is None else as_cached(entry)

    def __getitem__(self, key: str) -> Any:
        entry = self.lookup(key)
        if entry is None:
            raise KeyError(key)
        return as_cached(entry)

    def __setitem__(self, key: str, value: Any) -> None:
        self.put(key, stamped(value))

    def __delitem__(self, key: str) -> None:
        if self.pop(key) is None:
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(dict.fromkeys([*self.young, *self.old]))

    def __len__(self) -> int:
        """Entries held (a key whose older entry waits in the old generation counts twice)."""
        return len(self.young) + len(self.old)

    def __contains__(self, key: object) -> bool:
        return key in self.young or key in self.old
