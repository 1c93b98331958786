"""Any blob of the net, its channels tiled side by side, so nets other than ours can be explored."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore, QtWidgets

from viewer.maps import render

MAX_CHANNELS = 256


def best_columns(count: int, tile: tuple[int, int], width: int, height: int) -> int:
    """Tiles per row whose sheet has the canvas's aspect ratio, so the tiles come out largest."""
    h, w = tile
    target = width / max(1, height)

    def mismatch(columns: int) -> float:
        rows = -(-count // columns)
        return abs(np.log((columns * w) / (rows * h) / target))

    return min(range(1, count + 1), key=mismatch)


class BlobPanel(QtWidgets.QWidget):
    """A blob picker and the picked blob's channels as one tiled gray image.

    `blob_changed(name)` asks for that blob (of the map on screen, and with the next maps).
    """

    blob_changed = QtCore.pyqtSignal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.picker = QtWidgets.QComboBox()
        self.picker.setToolTip("Blob of the net to show (one tile per channel, each stretched "
                               "to its own range)")
        self.info = QtWidgets.QLabel()
        self.canvas = pg.GraphicsLayoutWidget()
        self.view = self.canvas.addViewBox(lockAspect=True, invertY=True)
        self.image = pg.ImageItem()
        self.view.addItem(self.image)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("Blob"))
        top.addWidget(self.picker)
        top.addWidget(self.info, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.canvas, 1)
        self.picker.currentTextChanged.connect(self._picked)
        self.values: np.ndarray | None = None
        self.columns = 0
        self.names: list[str] = []        # one per channel when the blob is the class scores
        self.captions: list[pg.TextItem] = []

    def set_blobs(self, names: list[str], current: str) -> None:
        """Offer `names`, with `current` (the state's pick) chosen."""
        self.picker.blockSignals(True)
        self.picker.clear()
        self.picker.addItems(names)
        self.picker.setCurrentText(current)
        self.picker.blockSignals(False)

    def blob(self) -> str:
        return self.picker.currentText()

    def show_blob(self, name: str, values: np.ndarray | None,
                  labels: list[str] | None = None) -> None:
        """Tile the channels of one blob (C x h x w) of the map on screen; None clears the
        panel until that map's blob is computed. A blob with one channel per class (the
        scores) gets the class names as captions."""
        if name != self.blob():
            return
        self._clear_captions()
        if values is None:
            self.values, self.columns = None, 0
            self.image.clear()
            self.info.setText("computing..." if name else "")
            return
        values = values[:, None, None] if values.ndim == 1 else values
        c, h, w = values.shape
        more = f" (first {MAX_CHANNELS} shown)" if c > MAX_CHANNELS else ""
        self.info.setText(f"{c} channels of {h}x{w}{more}, range {values.min():.3g} to "
                          f"{values.max():.3g}")
        self.values = values[:MAX_CHANNELS]
        self.names = list(labels) if labels is not None and len(labels) == c else []
        self.columns = 0
        self._tile()

    def _clear_captions(self) -> None:
        for caption in self.captions:
            self.view.removeItem(caption)
        self.captions = []

    def _caption(self) -> None:
        """Each class tile's name in its top-left corner."""
        self._clear_captions()
        h, w = self.values.shape[1:]
        for k, name in enumerate(self.names[:len(self.values)]):
            r, c = divmod(k, self.columns)
            caption = pg.TextItem(name, color=(255, 170, 40), fill=(0, 0, 0, 160), anchor=(0, 0))
            caption.setPos(c * (w + 2), r * (h + 2))
            self.view.addItem(caption)
            self.captions.append(caption)

    def _tile(self) -> None:
        """Lay the channels out for the canvas's current shape (again when it changes)."""
        if self.values is None or not self.isVisible():
            return
        columns = best_columns(len(self.values), self.values.shape[1:], self.canvas.width(),
                               self.canvas.height())
        if columns != self.columns:
            self.columns = columns
            self.image.setImage(render.tile_channels(self.values, columns), levels=(0, 255))
            self._caption()
            self.view.autoRange(padding=0.01, items=[self.image])

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._tile()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._tile()

    def _picked(self, name: str) -> None:
        if name:
            self.info.setText("computing...")
            self.blob_changed.emit(name)
