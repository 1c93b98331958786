"""Start the desktop viewer from `main.py view` arguments, and `--screenshot` it for the README."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pyqtgraph as pg
from PyQt5 import QtCore, QtWidgets

from viewer.files import paths
from viewer.errors import ViewerError
from viewer.app import session
from viewer.gui import display
from viewer.gui.main_window import MainWindow
from viewer.gui.settings import Settings
from viewer.cli.preprocess_options import settings_from_args
from viewer.files.safe_write import check_output_path, probe_writable, write_bytes_atomic


WINDOW_SIZE = (1280, 800)    # the smallest screenshot, and the window of benchmarks
SCREENSHOT_DELAY_MS = 300


def initial_model(args: argparse.Namespace) -> session.LoadedModel:
    """The model named on the command line, or the bundled surgered LeNet.

    A classifier given on the command line is converted: asking for it is the user's
    request to see it as a dense map.
    """
    if (args.prototxt is None) != (args.weights is None):
        raise ViewerError("give --prototxt and --weights together")
    prototxt = Path(args.prototxt or paths.FCN_PROTOTXT)
    weights = Path(args.weights or paths.FCN_WEIGHTS)
    net = session.read_net(prototxt, weights)
    return session.build_model(net, prototxt, weights, getattr(args, "engine", None),
                               settings_from_args(args, net, prototxt))


def create_window(args: argparse.Namespace, settings: Settings,
                  auto_check: bool = True) -> MainWindow:
    """Load everything the command line names, then build the window (errors come first).

    Without --scale the window opens at the automatic scale (`reading.auto_read`).
    """
    image = session.read_image(args.image or paths.SAMPLE_PLATE)
    model = initial_model(args)
    if args.channel and args.channel not in model.dense.labels:
        raise ViewerError(f"unknown channel '{args.channel}'; choose one of "
                          f"{' '.join(model.dense.labels)}")
    fine_on = wants_fine(args, model.dense)
    window = MainWindow(model, image, settings, channel=args.channel, scale=args.scale,
                        auto_check=auto_check)
    window.set_fine(fine_on)
    return window


def wants_fine(args: argparse.Namespace, dense) -> bool:
    """`view --stride N`: the viewer shows the net's own stride or, after it, stride 1."""
    stride = getattr(args, "stride", None)
    if stride is None or stride == dense.native_stride[0]:
        return False
    if stride != 1:
        raise ViewerError(f"the viewer shows stride {dense.native_stride[0]} (the net's) or 1, "
                          f"not {stride}; `map --stride {stride}` writes such a map")
    return True


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
    window.hover_example()
    QtWidgets.QApplication.processEvents()
    inputs = tuple(p for p in (window.image.path, window.model.prototxt, window.model.weights)
                   if p)
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
        if window.fm is not None and window.fm.conv1 is not None and \
                not window.conv1.tiles_show(window.fm):
            return                      # the tiles follow the map: wait for panels_shown
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


def run_viewer(args: argparse.Namespace) -> int:
    """Open the window; with --screenshot save it once the first map is drawn and quit."""
    shooting = bool(getattr(args, "screenshot", None))
    if shooting:  # say now, not after the window has drawn, that it cannot be written
        check_output_path(args.screenshot, (args.image or paths.SAMPLE_PLATE,))
        probe_writable(Path(args.screenshot).parent)
    use_a_display(shooting)
    if shooting and QtWidgets.QApplication.instance() is None:
        # One window pixel per image pixel, whatever DPI the display reports: 1280x800 PNGs.
        QtCore.QCoreApplication.setAttribute(QtCore.Qt.AA_DisableHighDpiScaling, True)
    app = pg.mkQApp("Net Surgery Viewer")
    app.setOrganizationName("NetSurgeryViewer")
    # Screenshots must look the same on every machine: no remembered state.
    settings = Settings(None) if shooting else Settings.default()
    # A screenshot quits after the first map: no surgery timing running in the background.
    window = create_window(args, settings, auto_check=not shooting)
    area = app.primaryScreen().availableGeometry()
    if shooting:    # all of the screen, at least WINDOW_SIZE (offscreen's screen is 800x600)
        area = area.united(QtCore.QRect(area.topLeft(), QtCore.QSize(*WINDOW_SIZE)))
    window.fit_to(area, 1.0 if shooting else 0.92)
    if not shooting:
        window.restore_window_state()
    window.show()
    window.show_warnings(window.model.net.warnings)
    saved = schedule_screenshot(window, Path(args.screenshot)) if shooting else []
    return app.exec_() or (0 if all(saved) else 1)
