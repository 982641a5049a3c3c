"""A bounded, thread-safe LRU mapping (the account-number parser's memo, ``urls``)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from typing import Any


class BoundedLRU(MutableMapping[str, Any]):
    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._data: OrderedDict[str, Any] = OrderedDict()
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
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

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
