"""A background thread that runs the latest request of each kind and drops the stale ones.

Dragging the scale slider asks for dozens of maps a second; only the newest one matters. Each
`submit` replaces any request of the same kind that has not started yet, so the thread never
works through a queue of outdated scales and the GUI thread never waits for a forward pass.

A request can be cancelled. One that has not started is dropped; one that is running (maybe
inside an engine, which cannot be interrupted) is disowned: the worker reports idle at once and
its result is thrown away when it returns. Long jobs poll `should_stop()` to end early.
"""
from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from PyQt5 import QtCore

from viewer import progress
from viewer.errors import ViewerError


@dataclass(frozen=True)
class Job:
    """One request: what to run, a tag the caller uses to recognise its result, and its number."""

    kind: str
    run: Callable[[], Any]
    tag: Any = None
    number: int = 0


class _Relay(QtCore.QObject):
    """Lives on the GUI thread and passes results on, unless their job was cancelled meanwhile.

    The check happens here, on the GUI thread, so a result that was already on its way when
    the user pressed Cancel is still dropped.
    """

    def __init__(self, worker: "LatestWorker") -> None:
        super().__init__()
        self.worker = worker

    @QtCore.pyqtSlot(object, bool, object)
    def deliver(self, job: Job, ok: bool, result: Any) -> None:
        if self.worker.was_cancelled(job):
            return
        if ok:
            self.worker.done.emit(job.kind, job.tag, result)
        else:
            self.worker.failed.emit(job.kind, job.tag, result)


class LatestWorker(QtCore.QObject):
    """Runs jobs on its own QThread, latest request per kind wins.

    `done(kind, tag, result)` and `failed(kind, tag, message)` arrive on the GUI thread, never
    for a job cancelled before they arrive. `busy_changed` says that the state may have changed:
    ask `is_busy()`, because a queued "idle" can arrive after a newer submit has made the worker
    busy again.
    """

    done = QtCore.pyqtSignal(str, object, object)
    failed = QtCore.pyqtSignal(str, object, str)
    busy_changed = QtCore.pyqtSignal()
    progress = QtCore.pyqtSignal(str, float)   # kind, fraction done (0-1; -1: just started)
    _finished = QtCore.pyqtSignal(object, bool, object)
    _wake = QtCore.pyqtSignal()

    def __init__(self, name: str = "worker") -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._pending: dict[str, Job] = {}
        self._current: Job | None = None       # the job inside run(), on the worker thread
        self._cut: dict[str, int] = {}         # kind -> jobs numbered up to this are cancelled
        self._count = 0
        self._running = False                  # a drain is scheduled or in progress
        self.stopping = threading.Event()      # set on quit: long jobs end early
        self._relay = _Relay(self)             # created here, so it stays on the GUI thread
        self._finished.connect(self._relay.deliver, QtCore.Qt.QueuedConnection)
        self._thread = QtCore.QThread()
        self._thread.setObjectName(name)
        self.moveToThread(self._thread)
        self._wake.connect(self._drain, QtCore.Qt.QueuedConnection)
        self._thread.start()

    # the GUI thread's side ------------------------------------------------------------------
    def submit(self, kind: str, run: Callable[[], Any], tag: Any = None) -> None:
        """Ask for `run()`; a not-yet-started job of the same kind is dropped."""
        with self._lock:
            self._count += 1
            self._pending[kind] = Job(kind, run, tag, self._count)
            start = not self._running
            self._running = True
        self.busy_changed.emit()
        if start:
            self._wake.emit()

    def cancel(self, kinds: tuple[str, ...] | None = None) -> list[str]:
        """Cancel the waiting and running jobs of `kinds` (all kinds when None).

        Returns the kinds that had work, so the caller can say what was stopped. The worker
        is idle for `is_busy()` as soon as this returns, even if a pass is still running.
        """
        with self._lock:
            busy = [job.kind for job in self._live() if kinds is None or job.kind in kinds]
            for kind in busy:
                self._cut[kind] = self._count
                self._pending.pop(kind, None)
        if busy:
            self.busy_changed.emit()
        return busy

    def is_busy(self) -> bool:
        return bool(self.busy_kinds())

    def busy_kinds(self) -> list[str]:
        """The kinds waiting or running, leaving out cancelled ones."""
        with self._lock:
            return [job.kind for job in self._live()]

    def is_running(self) -> bool:
        """The thread still has work, cancelled jobs included (a pass cannot be interrupted)."""
        with self._lock:
            return self._running

    def was_cancelled(self, job: Job) -> bool:
        with self._lock:
            return job.number <= self._cut.get(job.kind, 0)

    def _live(self) -> list[Job]:
        """Call with the lock held."""
        jobs = list(self._pending.values())
        current = self._current
        if current is not None and current.number > self._cut.get(current.kind, 0) \
                and current.kind not in self._pending:
            jobs.insert(0, current)
        return jobs

    # the worker thread's side ---------------------------------------------------------------
    def should_stop(self) -> bool:
        """For the running job: has it been cancelled, or is the window closing?"""
        job = self._current
        return self.stopping.is_set() or (job is not None and self.was_cancelled(job))

    def _next(self) -> Job | None:
        with self._lock:
            self._current = None
            if not self._pending:
                self._running = False
                return None
            self._current = self._pending.pop(next(iter(self._pending)))
            return self._current

    @QtCore.pyqtSlot()
    def _drain(self) -> None:
        while (job := self._next()) is not None:
            if self.stopping.is_set():
                continue
            self.progress.emit(job.kind, -1.0)
            try:
                with progress.reporting(self._reporter(job)):
                    result = job.run()
            except ViewerError as err:
                self._finished.emit(job, False, str(err))
            except Exception as err:  # a bug, or a cancelled job ending early
                if self.stopping.is_set() or self.was_cancelled(job):
                    continue
                traceback.print_exc()
                self._finished.emit(job, False, f"internal error: {type(err).__name__}: {err}")
            else:
                self._finished.emit(job, True, result)
        self.busy_changed.emit()

    def _reporter(self, job: Job) -> Callable[[float], None]:
        """What the core's `progress.report` calls during `job`: a `progress` signal per
        whole percent (a pass reports once per band, hundreds of times)."""
        last = [-1]

        def report(fraction: float) -> None:
            percent = int(fraction * 100)
            if percent != last[0] and not self.was_cancelled(job):
                last[0] = percent
                self.progress.emit(job.kind, fraction)
        return report

    def stop(self) -> None:
        """Drop what waits, let the running job finish, and end the thread."""
        self.stopping.set()
        with self._lock:
            self._pending.clear()
        self._thread.quit()
        self._thread.wait()
