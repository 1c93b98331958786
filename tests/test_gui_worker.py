"""The latest-request-wins worker: stale requests are dropped, failures come back as messages."""
from __future__ import annotations

import threading

from PyQt5 import QtWidgets

from viewer.errors import ViewerError
from viewer.gui.worker import LatestWorker


def test_waiting_requests_are_replaced_by_the_newest(qtbot):
    worker = LatestWorker("test")
    release, started = threading.Event(), threading.Event()
    ran: list[int] = []
    results: list[int] = []
    worker.done.connect(lambda kind, tag, result: results.append(result))

    def job(n: int):
        def run():
            if n == 0:
                started.set()
                release.wait(5)
            ran.append(n)
            return n
        return run

    worker.submit("map", job(0), 0)
    qtbot.waitUntil(started.is_set)
    for n in range(1, 20):
        worker.submit("map", job(n), n)
    release.set()
    qtbot.waitUntil(lambda: not worker.is_busy() and len(results) == 2, timeout=5000)
    worker.stop()
    assert ran == [0, 19]
    assert results == [0, 19]


def test_kinds_do_not_replace_each_other(qtbot):
    worker = LatestWorker("test")
    release = threading.Event()
    seen: list[str] = []
    worker.done.connect(lambda kind, tag, result: seen.append(kind))
    worker.submit("slow", lambda: release.wait(5))
    worker.submit("map", lambda: 1)
    worker.submit("auto", lambda: 2)
    release.set()
    qtbot.waitUntil(lambda: len(seen) == 3, timeout=5000)
    worker.stop()
    assert seen == ["slow", "map", "auto"]


def test_a_failure_comes_back_as_a_message_and_the_thread_lives_on(qtbot):
    worker = LatestWorker("test")

    def broken():
        raise ViewerError("the scale is too small")

    with qtbot.waitSignal(worker.failed) as failed:
        worker.submit("map", broken, "tag")
    assert failed.args == ["map", "tag", "the scale is too small"]
    with qtbot.waitSignal(worker.done) as done:
        worker.submit("map", lambda: 42)
    assert done.args[2] == 42
    worker.stop()


def test_busy_is_reported_until_the_last_job_ends(qtbot):
    worker = LatestWorker("test")
    release = threading.Event()
    worker.submit("map", lambda: release.wait(5))
    assert worker.is_busy()
    with qtbot.waitSignal(worker.busy_changed):
        release.set()
    qtbot.waitUntil(lambda: not worker.is_busy(), timeout=5000)
    worker.stop()


def test_a_cancelled_running_job_is_idle_at_once_and_its_result_is_dropped(qtbot):
    worker = LatestWorker("test")
    release, started = threading.Event(), threading.Event()
    asked: list[bool] = []

    def inside_an_engine():
        started.set()
        release.wait(5)                 # cannot be interrupted, like a forward pass
        asked.append(worker.should_stop())
        return "stale"

    worker.submit("map", inside_an_engine)
    qtbot.waitUntil(started.is_set)
    assert worker.busy_kinds() == ["map"]
    with qtbot.waitSignal(worker.busy_changed):
        assert worker.cancel() == ["map"]
    assert not worker.is_busy()         # idle for the UI while the pass still runs
    with qtbot.assertNotEmitted(worker.done), qtbot.assertNotEmitted(worker.failed), \
            qtbot.waitSignal(worker.busy_changed, timeout=5000):
        release.set()                   # the pass returns; the worker thread drains
    assert asked == [True]
    with qtbot.waitSignal(worker.done) as done:
        worker.submit("map", lambda: "fresh")
    assert done.args[2] == "fresh"
    worker.stop()


def test_cancelling_one_kind_leaves_the_others(qtbot):
    worker = LatestWorker("test")
    release, started = threading.Event(), threading.Event()
    seen: list[str] = []
    worker.done.connect(lambda kind, tag, result: seen.append(kind))
    worker.submit("slow", lambda: (started.set(), release.wait(5)))
    qtbot.waitUntil(started.is_set)
    worker.submit("map", lambda: 1)
    worker.submit("auto", lambda: 2)
    assert worker.cancel(("auto", "other")) == ["auto"]
    assert sorted(worker.busy_kinds()) == ["map", "slow"]
    release.set()
    qtbot.waitUntil(lambda: not worker.is_busy(), timeout=5000)
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=5000)
    worker.stop()
    assert seen == ["slow", "map"]


def test_a_job_that_stops_early_on_cancel_reports_nothing(qtbot):
    worker = LatestWorker("test")
    started = threading.Event()

    def polling():
        started.set()
        while not worker.should_stop():
            threading.Event().wait(0.001)
        raise RuntimeError("stopped between two batches")

    worker.submit("surgery", polling)
    qtbot.waitUntil(started.is_set)
    with qtbot.assertNotEmitted(worker.failed):
        assert worker.cancel() == ["surgery"]
        assert not worker.is_busy()
        qtbot.waitUntil(lambda: not worker.is_running(), timeout=5000)  # it saw should_stop()
        QtWidgets.QApplication.processEvents()
    worker.stop()
