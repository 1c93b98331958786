"""A background thread that runs the latest request of each kind and drops the stale ones.

Dragging the scale slider asks for dozens of maps a second; only the newest one matters. Each
`submit` replaces any request of the same kind that has not started yet, so the thread never
works through a queue of outdated scales and the GUI thread never waits for a forward pass.
"""
from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from PyQt5 import QtCore

from viewer.errors import ViewerError


@dataclass(frozen=True)
class Job:
    """One request: what to run, and a tag the caller uses to recognise its result."""

    kind: str
    run: Callable[[], Any]
    tag: Any = None


class LatestWorker(QtCore.QObject):
    """Runs jobs on its own QThread, latest request per kind wins.

    `done(kind, tag, result)` and `failed(kind, tag, message)` arrive on the GUI thread.
    `busy_changed` says that the state may have changed: ask `is_busy()`, because a queued
    "idle" can arrive after a newer submit has made the worker busy again.
    """

    done = QtCore.pyqtSignal(str, object, object)
    failed = QtCore.pyqtSignal(str, object, str)
    busy_changed = QtCore.pyqtSignal()
    _wake = QtCore.pyqtSignal()

    def __init__(self, name: str = "worker") -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._pending: dict[str, Job] = {}
        self._running = False
        self.stopping = threading.Event()   # long jobs poll this to end early on quit
        self._thread = QtCore.QThread()
        self._thread.setObjectName(name)
        self.moveToThread(self._thread)
        self._wake.connect(self._drain, QtCore.Qt.QueuedConnection)
        self._thread.start()

    def submit(self, kind: str, run: Callable[[], Any], tag: Any = None) -> None:
        """Ask for `run()`; a not-yet-started job of the same kind is dropped."""
        with self._lock:
            self._pending[kind] = Job(kind, run, tag)
            start = not self._running
            self._running = True
        if start:
            self.busy_changed.emit()
            self._wake.emit()

    def is_busy(self) -> bool:
        with self._lock:
            return self._running

    def _next(self) -> Job | None:
        with self._lock:
            if not self._pending:
                self._running = False
                return None
            return self._pending.pop(next(iter(self._pending)))

    @QtCore.pyqtSlot()
    def _drain(self) -> None:
        while (job := self._next()) is not None:
            if self.stopping.is_set():
                continue
            try:
                result = job.run()
            except ViewerError as err:
                self.failed.emit(job.kind, job.tag, str(err))
            except Exception as err:  # a bug: say so with its type, keep the thread alive
                if self.stopping.is_set():
                    continue
                traceback.print_exc()
                self.failed.emit(job.kind, job.tag, f"internal error: {type(err).__name__}: {err}")
            else:
                self.done.emit(job.kind, job.tag, result)
        self.busy_changed.emit()

    def stop(self) -> None:
        """Drop what waits, let the running job finish, and end the thread."""
        self.stopping.set()
        with self._lock:
            self._pending.clear()
        self._thread.quit()
        self._thread.wait()
