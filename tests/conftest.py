from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from smarter_domain import Domain


class QueryCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    @property
    def count(self) -> int:
        return len(self.statements)

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
            self.statements.append(statement)


@pytest.fixture
def count_queries(domain: Domain) -> Any:
    """``with count_queries() as counter: ...`` counts SELECT/INSERT/UPDATE/DELETE statements."""

    @contextmanager
    def counting() -> Iterator[QueryCounter]:
        counter = QueryCounter()
        event.listen(domain.engine, "before_cursor_execute", counter)
        try:
            yield counter
        finally:
            event.remove(domain.engine, "before_cursor_execute", counter)

    return counting
