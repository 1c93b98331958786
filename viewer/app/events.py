"""Change notifications without Qt: an `Event` calls its callbacks, in the order connected.

The state says what changed through these (as napari's `ViewerModel` does through its events);
the widgets connect to them. Callbacks run at once on the thread that emits, so only the GUI
thread changes the state: worker results reach it through the workers' own queued signals.
"""
from __future__ import annotations

from typing import Any, Callable

Callback = Callable[..., Any]


class Event:
    """One kind of change ("the map on screen is new"); `emit(*values)` calls each callback
    with the values, first connected first, so a window can connect its "all drawn" signal
    last."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Callback] = []

    def connect(self, callback: Callback) -> Callback:
        self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callback) -> None:
        self._callbacks.remove(callback)

    def emit(self, *values: Any) -> None:
        for callback in list(self._callbacks):   # a callback may connect or disconnect others
            callback(*values)

    def __repr__(self) -> str:
        return f"Event({self.name!r}, {len(self._callbacks)} callbacks)"
