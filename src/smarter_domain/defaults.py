"""The process default of a composition root (``Domain``'s, ``AsyncDomain``'s): one object per
process, built on first use or installed, and whether the library owns it (then it closes
it when it is replaced)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ProcessDefault(Generic[T]):
    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._ours = False
        self._lock = threading.Lock()
        if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
            os.register_at_fork(after_in_child=self._renew_lock)

    def _renew_lock(self) -> None:
        """In a forked child: a thread of the parent may have held the lock at the fork."""
        self._lock = threading.Lock()

    def get(self) -> T:
        """The default, built (and owned) on first use."""
        value = self._value
        if value is not None:
            return value
        with self._lock:
            if self._value is None:
                self._value, self._ours = self._build(), True
            return self._value

    def current(self) -> T | None:
        """The default if one is installed (``get`` would build one)."""
        return self._value

    def set(self, value: T | None) -> T | None:
        """Install an application-owned default (or none); the previous one, left open."""
        with self._lock:
            previous, self._value, self._ours = self._value, value, False
            return previous

    def install(self, value: T) -> T | None:
        """Install a default the library owns; the previous one if the library owned it (the
        caller closes it), else None."""
        with self._lock:
            previous, ours = self._value, self._ours
            self._value, self._ours = value, True
        return previous if ours and previous is not value else None

    def clear(self) -> T | None:
        """Uninstall the default; it if the library owned it (the caller closes it)."""
        with self._lock:
            previous, ours = self._value, self._ours
            self._value, self._ours = None, False
        return previous if ours else None
