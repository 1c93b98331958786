"""What a user feels, measured in the running window: scale change to repaint, and GUI stalls.

Issue 5's GUI targets are a repaint within one forward time + 50 ms of a scale change, a GUI
thread never blocked for more than 50 ms while a map is computed, and the first map on screen
within 3 s of launch. A `LatencyProbe` attached to a window measures all three with Qt's own
events, so the bench (`bench/gui_latency.py`) and tests read the same numbers.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from PyQt5 import QtCore

from viewer.gui.main_window import MainWindow

HEARTBEAT_MS = 10


@dataclass
class Repaint:
    """One map request (a scale change, mostly) and the paint that first showed its map."""

    scale: float
    ms: float             # from the request (the window's MapTag.asked) to the end of that paint
    forward_ms: float     # the engine's time for that map, for comparison


@dataclass
class LatencyFigures:
    repaints: list[Repaint] = field(default_factory=list)
    worst_block_ms: float = 0.0          # longest GUI-thread stall while the map worker was busy
    worst_block_any_ms: float = 0.0      # longest stall at any time since the probe started
    first_map_at: float | None = None    # perf_counter() when the first map was painted


class LatencyProbe(QtCore.QObject):
    """Attach to a window; `repainted(ms)` fires each time a requested scale reaches the screen.

    Scale change -> repaint: each map request carries the time it was made (`MapTag.asked`,
    taken in `request_map` before anything else runs); when its map has been drawn
    (`map_shown`), the next paint of the plate view is the moment the user sees it. Coalesced
    requests count from the last one, the one whose map is shown; the automatic scale's maps
    are not scale changes and are left out. GUI stalls: a 10 ms precise timer on the GUI
    thread; a tick that comes late by more than its interval means the thread was busy for
    that long. Lateness counts as "while a map is computed" when the map worker was busy at
    either end of the gap.
    """

    repainted = QtCore.pyqtSignal(float)
    first_map = QtCore.pyqtSignal()

    def __init__(self, window: MainWindow, interval_ms: int = HEARTBEAT_MS) -> None:
        super().__init__(window)
        self.window = window
        self.figures = LatencyFigures()
        self._drawn: tuple[float, float] | None = None   # (scale, asked at) waiting for paint
        self._first_pending = window.state.fm is None
        self._interval = interval_ms / 1000.0
        self._last_tick: float | None = None
        self._busy_at_last_tick = False
        window.map_shown.connect(self._map_drawn)
        window.plate.painted.connect(self._painted)
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def reset(self) -> None:
        """Forget what was measured (keep the first-map time)."""
        first = self.figures.first_map_at
        self.figures = LatencyFigures(first_map_at=first)
        self._last_tick = None

    def stop(self) -> None:
        self.timer.stop()

    # scale change -> repaint -----------------------------------------------------------------
    def _map_drawn(self) -> None:
        state = self.window.state
        tag, fm = state.shown_tag, state.fm
        if tag is not None and fm is not None and not state.auto_shown:
            self._drawn = (fm.scale, tag.asked)
        self.window.plate.viewport().update()   # make sure a paint follows

    def _painted(self) -> None:
        now = time.perf_counter()
        if self._first_pending and self.window.state.fm is not None:
            self._first_pending = False
            self.figures.first_map_at = now
            self.first_map.emit()
        if self._drawn is not None:
            scale, asked = self._drawn
            self._drawn = None
            ms = (now - asked) * 1000.0
            self.figures.repaints.append(Repaint(scale, ms, self.window.state.fm.forward_ms))
            self.repainted.emit(ms)

    # GUI-thread stalls ------------------------------------------------------------------------
    def _tick(self) -> None:
        now = time.perf_counter()
        busy = self.window.maps.is_busy()
        if self._last_tick is not None:
            late_ms = max(0.0, (now - self._last_tick - self._interval) * 1000.0)
            f = self.figures
            f.worst_block_any_ms = max(f.worst_block_any_ms, late_ms)
            if busy or self._busy_at_last_tick:
                f.worst_block_ms = max(f.worst_block_ms, late_ms)
        self._last_tick, self._busy_at_last_tick = now, busy
