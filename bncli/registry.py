"""One generic registry of named units: data sources, model families, normalizations, probes,
analyses and claims are each a `Registry`, filled by bncli's own modules and by plugins through
the same `register` call. Imports nothing from bncli (every registry module imports it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownName(KeyError, ValueError):
    """A name no entry has: a KeyError for lookups, a ValueError inside pydantic validators."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Named entries of one kind, in registration order; listeners hear of every change (the
    spec's models rebuild their choices from it, so no registry imports the spec)."""

    def __init__(self, kind: str, entries: dict[str, T] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = dict(entries or {})
        self._listeners: list[Callable[[], None]] = []

    def register(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Add `entry` as `name`; a name already taken is a ValueError unless `replace`."""
        if not name or not isinstance(name, str):
            raise ValueError(f"a {self.kind} needs a non-empty name")
        if name in self._items and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered (pass replace=True to change it)")
        self._items[name] = entry
        self._changed()
        return entry

    def unregister(self, name: str) -> None:
        """Remove `name` (tests and plugins undoing a registration)."""
        self._items.pop(name, None)
        self._changed()

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownName(f"unknown {self.kind} {name!r} (known: {', '.join(self._items)})") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def values(self) -> list[T]:
        return list(self._items.values())

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def snapshot(self) -> dict[str, T]:
        return dict(self._items)

    def restore(self, snapshot: dict[str, T]) -> None:
        """Put back what `snapshot()` returned (tests that register for a while)."""
        self._items = dict(snapshot)
        self._changed()

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _changed(self) -> None:
        for fn in list(self._listeners):
            fn()

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._items)})"
