"""A name -> item registry with the error a user needs: the known names (tasks, algorithms)."""
from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind            # "task", "algorithm": said in the error
        self._items: dict[str, T] = {}

    def register(self, item: T) -> T:
        """Add (or replace) ``item`` under its ``name``."""
        self._items[item.name] = item
        return item

    def names(self) -> list[str]:
        return list(self._items)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self._items)}") from None
