"""What a unit of work changed, published after it commits (cache invalidation, signals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .entities import Entity

Action = Literal["create", "update", "delete"]


@dataclass(frozen=True, slots=True)
class Change:
    """One committed write. ``before`` is None on create, ``after`` is None on delete."""

    action: Action
    before: Entity | None
    after: Entity | None

    @property
    def entity(self) -> Entity:
        entity = self.after if self.after is not None else self.before
        assert entity is not None, "a Change names at least one side"
        return entity
