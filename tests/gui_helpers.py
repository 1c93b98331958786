"""Shared pieces of the GUI tests: a window on a generated plate, pixel probes, a fake reader.

Nothing here depends on what the model predicts: the bundled net has provisional weights, so
the tests check that what is drawn matches the model's output, whatever that output is.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PyQt5 import QtCore, QtWidgets

from viewer.cli.run import build_parser
from viewer.maps.export import save_png
from viewer.app import session
from viewer.cli.view import initial_model
from viewer.gui.main_window import MainWindow
from viewer.gui.settings import Settings

MAP_TIMEOUT = 20_000


def generated_plate(height: int = 96, width: int = 260, seed: int = 1) -> np.ndarray:
    """An RGB plate-like picture: light ground, a blue band, dark bars as characters."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), (225, 228, 220), np.uint8)
    image[:, :18] = (30, 60, 200)
    for x in range(30, width - 20, 28):
        image[20:height - 20, x:x + rng.integers(5, 12)] = rng.integers(0, 70)
    return image


def default_args(**overrides) -> argparse.Namespace:
    """`view`'s arguments as the parser gives them without flags, with `overrides`."""
    values = {**vars(build_parser().parse_args(["view"])), "engine": None}
    values.update(overrides)
    return argparse.Namespace(**values)


def rect_tuple(rect: QtCore.QRectF) -> tuple[float, float, float, float]:
    return (rect.x(), rect.y(), rect.width(), rect.height())


def item_rect(item) -> tuple[float, float, float, float]:
    """Where an ImageItem is drawn, in plate (view) coordinates."""
    return rect_tuple(item.mapRectToParent(item.boundingRect()))


def pixel_at(window: MainWindow, x: float, y: float) -> tuple[int, int, int]:
    """The drawn RGB at original-image point (x, y) of the plate view."""
    QtWidgets.QApplication.processEvents()
    point = window.plate.image_to_widget(x, y)
    color = window.plate.grab().toImage().pixelColor(point)
    return color.red(), color.green(), color.blue()


def cell_centre(fm, i: int, j: int) -> tuple[float, float]:
    """The centre of cell (i, j)'s drawn block, in original-image pixels."""
    x, y, w, h = fm.geometry.heatmap_rect(*fm.probs.shape[1:])
    rows, cols = fm.probs.shape[1:]
    return x + (j + 0.5) * w / cols, y + (i + 0.5) * h / rows


class Recorder:
    """Collects what the window would have shown in dialogs."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def __call__(self, message: str) -> None:
        self.errors.append(message)


@pytest.fixture
def plate_file(tmp_path) -> Path:
    return save_png(generated_plate(), tmp_path / "plate.png")


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.IniFormat))


def open_window(qtbot, plate: Path, settings: Settings, args: argparse.Namespace | None = None,
                **kwargs) -> MainWindow:
    """A shown window on `plate` with the model of `args` (default: the bundled one), after
    its first map is drawn and the conv1 tiles have followed."""
    model = initial_model(args or default_args())
    window = MainWindow(model, session.read_image(plate), settings, **kwargs)
    qtbot.addWidget(window)
    window.errors = Recorder()
    window.show_error = window.errors
    window.resize(1280, 800)
    with qtbot.waitSignals([window.map_shown, window.panels_shown], timeout=MAP_TIMEOUT):
        window.show()
    return window


@pytest.fixture
def window(qtbot, plate_file, settings) -> MainWindow:
    win = open_window(qtbot, plate_file, settings, scale=1.0)
    yield win
    win.close()


def load_model(qtbot, window: MainWindow, prototxt: Path, weights: Path | None = None) -> str:
    """File > Open model, waited for: "loaded", "failed", "declined" (no surgery) or "no
    weights" (the user gave none). The loading itself runs on the window's worker."""
    ends: list[str] = []
    loader = window.loader
    slots = [(loader.loaded, lambda *args: ends.append("loaded")),
             (loader.failed, lambda *args: ends.append("failed")),
             (loader.declined, lambda *args: ends.append("declined"))]
    for signal, slot in slots:
        signal.connect(slot)
    try:
        if not window.files.open_model(prototxt, weights):
            return "no weights"
        qtbot.waitUntil(lambda: bool(ends), timeout=MAP_TIMEOUT)
    finally:
        for signal, slot in slots:
            signal.disconnect(slot)
    return ends[0]


def fake_reading(fm, cells: list[tuple[int, int]], labels: list[str]):
    """A PlateReading with letters at chosen cells, built from the map's own numbers."""
    from viewer.plates.reading import Letter, PlateReading

    letters = []
    for (i, j), label in zip(cells, labels):
        k = fm.labels.index(label)
        order = np.argsort(fm.probs[:, i, j])[::-1][:3]
        top = [(label, float(fm.probs[k, i, j]))] + [(fm.labels[o], float(fm.probs[o, i, j]))
                                                     for o in order[:2]]
        letters.append(Letter(label, float(fm.probs[k, i, j]), top, fm.geometry.cell_window(i, j),
                              (i, j)))
    return PlateReading(letters, fm.scale)


def reading_window(qtbot, plate: Path, settings: Settings, monkeypatch, cells, labels):
    """A window whose plate reading is fixed (`labels` at `cells`), so the strip has letters
    to click."""
    from viewer.app import jobs

    monkeypatch.setattr(jobs, "reading_module", lambda: fake_reading_module(cells, labels))
    return open_window(qtbot, plate, settings, scale=1.0)


def fake_reading_module(cells, labels, auto_scale: float = 0.7):
    """Stands in for viewer.plates.reading so letters exist whatever the provisional weights say."""
    def auto_read(dense, image):
        fm = dense.run(image, auto_scale)
        return fake_reading(fm, cells, labels), fm

    return SimpleNamespace(read_plate=lambda fm: fake_reading(fm, cells, labels),
                           auto_read=auto_read)
