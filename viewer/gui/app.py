"""Start the desktop viewer on what `main.py view` resolved; `--screenshot` it for the README."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pyqtgraph as pg
from PyQt5 import QtCore, QtWidgets

from viewer.app.session import Opening
from viewer.errors import ViewerError
from viewer.files.safe_write import write_bytes_atomic
from viewer.gui import display
from viewer.gui.main_window import MainWindow
from viewer.gui.settings import Settings


WINDOW_SIZE = (1280, 800)    # the smallest screenshot, and the window of benchmarks
SCREENSHOT_DELAY_MS = 300


def create_window(opening: Opening, settings: Settings, auto_check: bool = True) -> MainWindow:
    """The window on what the command line named (loaded already, by `viewer.cli.view`).

    Without a scale the window opens at the automatic scale (`reading.auto_read`).
    """
    window = MainWindow(opening.model, opening.image, settings, channel=opening.channel,
                        scale=opening.scale, auto_check=auto_check)
    window.controller.set_fine(opening.fine)
    if opening.why:
        def explain_first(*_) -> None:
            window.map_shown.disconnect(explain_first)
            if window.state.result is not None and window.state.result.reading is not None \
                    and opening.why <= len(window.state.result.reading.letters):
                window.state.select_letter(opening.why - 1)
            window.controller.explain_letter(opening.why - 1)
        window.map_shown.connect(explain_first)
    return window


def png_bytes(widget: QtWidgets.QWidget) -> bytes:
    """The widget as drawn, encoded as PNG in memory."""
    buffer = QtCore.QBuffer()
    buffer.open(QtCore.QIODevice.WriteOnly)
    if not widget.grab().save(buffer, "PNG"):
        raise ViewerError("could not encode the screenshot as PNG")
    return bytes(buffer.data())


def save_screenshot(window: MainWindow, path: Path) -> bool:
    """Grab the whole window as the user sees it, write it atomically, then close.

    Written through `write_bytes_atomic`: never over the image or model shown, and an
    interrupted write leaves any earlier file whole.
    """
    state = window.state
    if state.explanation is None:
        state.hover_example()
    QtWidgets.QApplication.processEvents()
    inputs = tuple(p for p in (state.image.path, state.model.prototxt, state.model.weights) if p)
    try:
        write_bytes_atomic(path, png_bytes(window), inputs)
        saved = True
    except ViewerError as err:
        print(f"error: {err}", file=sys.stderr)
        saved = False
    window.close()
    return saved


def schedule_screenshot(window: MainWindow, path: Path) -> list[bool]:
    """Save `window` once its first map and its conv1 tiles are drawn (the automatic scale's
    map, unless --scale was given), or its error shown, and the work that follows (the plate
    search) has ended; the returned list gets True or False when that has happened."""
    saved: list[bool] = []
    signals = (window.map_shown, window.panels_shown, window.map_failed,
               window.maps.busy_changed)

    def shoot(*_message: str) -> None:
        if window.maps.is_busy():
            return                      # more work on its way (the plate search, a new map)
        fm = window.state.fm
        if fm is not None and fm.conv1 is not None and not window.conv1.tiles_show(fm):
            return                      # the tiles follow the map: wait for panels_shown
        if window.state.explain_request is not None and window.state.explanation is None:
            return                      # `--why`: wait for the explanation (panels_shown)
        for signal in signals:
            signal.disconnect(shoot)
        QtCore.QTimer.singleShot(SCREENSHOT_DELAY_MS,
                                 lambda: saved.append(save_screenshot(window, path)))
    for signal in signals:
        signal.connect(shoot)
    return saved


def use_a_display(shooting: bool) -> None:
    """Make sure Qt will find a screen, before it aborts the process for want of one: a
    screenshot is drawn offscreen then, a window is refused in one line."""
    if QtWidgets.QApplication.instance() is not None:
        return
    problem = display.display_problem()
    if problem and shooting:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    elif problem:
        raise ViewerError(f"{problem}: {display.NO_DISPLAY_HINT}")


def run_viewer(opening: Opening, screenshot: Path | None = None) -> int:
    """Open the window on `opening`; with a `screenshot` path save it once the first map is
    drawn and quit. (`viewer.cli.view` looks for a screen before loading anything, too.)"""
    shooting = screenshot is not None
    use_a_display(shooting)
    if shooting and QtWidgets.QApplication.instance() is None:
        # One window pixel per image pixel, whatever DPI the display reports: 1280x800 PNGs.
        QtCore.QCoreApplication.setAttribute(QtCore.Qt.AA_DisableHighDpiScaling, True)
    app = pg.mkQApp("Net Surgery Viewer")
    app.setOrganizationName("NetSurgeryViewer")
    # Screenshots must look the same on every machine: no remembered state.
    settings = Settings(None) if shooting else Settings.default()
    # A screenshot quits after the first map: no surgery timing running in the background.
    window = create_window(opening, settings, auto_check=not shooting)
    area = app.primaryScreen().availableGeometry()
    if shooting:    # all of the screen, at least WINDOW_SIZE (offscreen's screen is 800x600)
        area = area.united(QtCore.QRect(area.topLeft(), QtCore.QSize(*WINDOW_SIZE)))
    window.fit_to(area, 1.0 if shooting else 0.92)
    if not shooting:
        window.restore_window_state()
    window.show()
    window.show_warnings(window.state.model.net.warnings)
    saved = schedule_screenshot(window, screenshot) if shooting else []
    return app.exec_() or (0 if all(saved) else 1)
