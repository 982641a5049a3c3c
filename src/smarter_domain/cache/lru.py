"""A bounded, thread-safe LRU mapping for dogpile's memory backend (``cache_dict=``): the stock
memory backend keeps a plain dict that never evicts.

Its entries are dogpile's ``CachedValue``s, whose metadata is a ``Stamp``: the creation time
as a float (the hit path compares it with the clock directly), readable as dogpile's
``{"ct": ..., "v": ...}`` metadata dict, and shared by every entry stored in the same tenth of
a second: an entry costs one 2-tuple, where dogpile's costs a tuple, a dict and a float.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
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


def stamped(entry: Any) -> Any:
    """A ``CachedValue`` with a ``Stamp`` (one dogpile's region made carries a dict); any
    other value as it is (the LRU also serves as a plain bounded mapping)."""
    if type(entry) is not CachedValue:
        return entry
    metadata: Any = entry[1]
    if type(metadata) is Stamp:
        return entry
    return tuple.__new__(CachedValue, (entry[0], Stamp(metadata["ct"])))


class BoundedLRU(MutableMapping[str, Any]):
    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._data: OrderedDict[str, Any] = OrderedDict()
        self.data = self._data  # read directly by TieredCache.peek
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        # Lock-free: each OrderedDict operation is one C call under the GIL; a key removed
        # between the two just reads as missing.
        try:
            self._data.move_to_end(key)
            return self._data[key]
        except KeyError:
            return default

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            self._data.move_to_end(key)
            return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        value = stamped(value)
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def store(self, entries: dict[str, Any]) -> None:
        """Many entries (``CachedValue``s with a ``Stamp``) under one lock."""
        with self._lock:
            data = self._data
            data.update(entries)
            touch = data.move_to_end
            for key in entries:
                touch(key)
            while len(data) > self.maxsize:
                data.popitem(last=False)

    def __delitem__(self, key: str) -> None:
        with self._lock:
            del self._data[key]

    def pop(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return self._data.pop(key, default)

    def after_fork_in_child(self) -> None:
        """In a forked child (``forking``): a new lock, since a thread of the parent (which
        does not exist here) may have held the old one at the fork. The entries are left as
        they are: every OrderedDict operation is atomic under the GIL, so the fork cannot catch
        one half done (at worst one entry over ``maxsize``, trimmed by the next store)."""
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._data))

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data
