"""What the viewer remembers between runs: view options, recent files, last folders, window state.

Everything goes through one `Settings` object over a `QSettings`, so the keys and their types
live in one place, and tests can point it at a throwaway INI file.
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from PyQt5 import QtCore

from viewer.app.state import ViewOptions

ORGANIZATION = "NetSurgeryViewer"
APPLICATION = "viewer"
MAX_RECENT = 8


class Settings:
    """Typed access to the persistent settings; `store=None` keeps nothing (screenshots, tests)."""

    def __init__(self, store: QtCore.QSettings | None) -> None:
        self.store = store

    @classmethod
    def default(cls) -> "Settings":
        return cls(QtCore.QSettings(ORGANIZATION, APPLICATION))

    def _get(self, key: str, default, kind=str):
        if self.store is None:
            return default
        value = self.store.value(key, default)
        if kind is bool and isinstance(value, str):
            return value.lower() == "true"
        try:
            return kind(value)
        except (TypeError, ValueError):
            return default

    def _set(self, key: str, value) -> None:
        if self.store is not None:
            self.store.setValue(key, value)

    def view_options(self) -> ViewOptions:
        defaults = ViewOptions()
        return ViewOptions(**{f.name: self._get(f"view/{f.name}", getattr(defaults, f.name),
                                                type(getattr(defaults, f.name)))
                              for f in fields(ViewOptions)})

    def save_view_options(self, options: ViewOptions) -> None:
        for f in fields(ViewOptions):
            self._set(f"view/{f.name}", getattr(options, f.name))

    def recent(self, kind: str) -> list[str]:
        """Recent entries of `kind` ("images", "models", "datasets"), newest first."""
        if self.store is None:
            return []
        value = self.store.value(f"recent/{kind}", [])
        items = [value] if isinstance(value, str) else list(value or [])
        return [v for v in items if v]

    def add_recent(self, kind: str, entry: str) -> list[str]:
        items = [entry] + [v for v in self.recent(kind) if v != entry]
        self._set(f"recent/{kind}", items[:MAX_RECENT])
        return items[:MAX_RECENT]

    def last_folder(self, kind: str, fallback: str | None = None) -> str:
        """The folder last used for `kind` of file, else `fallback`, else the home folder."""
        return self._get(f"folders/{kind}", fallback or str(Path.home()))

    def set_last_folder(self, kind: str, path: str | Path) -> None:
        folder = Path(path)
        self._set(f"folders/{kind}", str(folder if folder.is_dir() else folder.parent))

    def window_state(self) -> tuple[QtCore.QByteArray | None, QtCore.QByteArray | None]:
        if self.store is None:
            return None, None
        return self.store.value("window/geometry"), self.store.value("window/state")

    def save_window_state(self, geometry: QtCore.QByteArray, state: QtCore.QByteArray) -> None:
        self._set("window/geometry", geometry)
        self._set("window/state", state)

    def sync(self) -> None:
        if self.store is not None:
            self.store.sync()
