"""The desktop viewer: the plate with a class heatmap over it, placed by the map's geometry."""
from __future__ import annotations

import argparse

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore, QtWidgets

from viewer import paths, render
from viewer.errors import ViewerError
from viewer.featuremap import DenseClassifier, FeatureMap

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)


class MapWorker(QtCore.QObject):
    """Runs dense passes off the GUI thread and reports results or errors as signals."""

    finished = QtCore.pyqtSignal(object)
    failed = QtCore.pyqtSignal(str)

    def __init__(self, dense: DenseClassifier) -> None:
        super().__init__()
        self.dense = dense

    @QtCore.pyqtSlot(object, float)
    def compute(self, image: np.ndarray, scale: float) -> None:
        try:
            self.finished.emit(self.dense.run(image, scale))
        except ViewerError as err:
            self.failed.emit(str(err))


class MainWindow(QtWidgets.QMainWindow):
    """The plate, the heatmap of one class (or the best class) and a status line."""

    request = QtCore.pyqtSignal(object, float)
    map_shown = QtCore.pyqtSignal()

    def __init__(self, image: np.ndarray, dense: DenseClassifier, channel: str | None) -> None:
        super().__init__()
        self.setWindowTitle("Net Surgery Viewer")
        self.image, self.dense, self.channel = image, dense, channel
        self.plot = pg.PlotWidget()
        self.plot.setAspectLocked(True)
        self.plot.invertY(True)
        self.plate = pg.ImageItem(image)
        self.heat = pg.ImageItem(opacity=0.6)
        self.plot.addItem(self.plate)
        self.plot.addItem(self.heat)
        self.setCentralWidget(self.plot)
        self.thread = QtCore.QThread(self)
        self.worker = MapWorker(dense)
        self.worker.moveToThread(self.thread)
        self.request.connect(self.worker.compute)
        self.worker.finished.connect(self.show_map)
        self.worker.failed.connect(self.show_error)
        self.thread.start()

    def compute(self, scale: float) -> None:
        self.statusBar().showMessage(f"computing the dense map at scale {scale:g}...")
        self.request.emit(self.image, scale)

    def show_map(self, fm: FeatureMap) -> None:
        if self.channel:
            k = fm.labels.index(self.channel)
            self.heat.setImage(fm.probs[k], levels=(0, 1))
            self.heat.setColorMap(pg.colormap.get("inferno"))
            what = f"P({self.channel})"
        else:
            self.heat.setImage(render.best_class_rgb(fm), levels=(0, 255))
            what = "best class (color) and its probability (brightness)"
        self.heat.setRect(QtCore.QRectF(*fm.geometry.heatmap_rect(*fm.probs.shape[1:])))
        c, h, w = fm.probs.shape
        self.statusBar().showMessage(f"{what}: {h}x{w} cells, stride {fm.geometry.stride[0]}, "
                                     f"window {fm.geometry.receptive_field[0]}, scale {fm.scale:g}, "
                                     f"{fm.forward_ms:.0f} ms ({self.dense.engine_name})")
        self.map_shown.emit()

    def show_error(self, message: str) -> None:
        self.statusBar().showMessage(message)
        QtWidgets.QMessageBox.warning(self, "Net Surgery Viewer", message)

    def closeEvent(self, event) -> None:
        self.thread.quit()
        self.thread.wait()
        super().closeEvent(event)


def run_viewer(args: argparse.Namespace) -> int:
    """Open the window on the given or sample plate; with --screenshot save it and quit."""
    from viewer.cli import load_model_args
    from viewer.images import load_image

    image = load_image(args.image or paths.SAMPLE_PLATE)
    dense = DenseClassifier(load_model_args(args), args.engine)
    if args.channel and args.channel not in dense.labels:
        raise ViewerError(f"unknown channel '{args.channel}'; choose one of "
                          f"{' '.join(dense.labels)}")
    app = pg.mkQApp("Net Surgery Viewer")
    window = MainWindow(image, dense, args.channel)
    window.resize(1280, 800)
    window.show()
    if args.screenshot:
        def save() -> None:
            app.processEvents()
            window.grab().save(str(args.screenshot))
            window.close()
        window.map_shown.connect(lambda: QtCore.QTimer.singleShot(200, save))
    window.compute(args.scale or 1.0)
    return app.exec_()
