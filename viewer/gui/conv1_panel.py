"""All first-layer filters: each 5x5 kernel beside what it responds to on the current plate.

This is the tutorial's "filter #i output" figure for every filter at once; clicking a tile
overlays that filter's output on the plate instead of the class heatmap.
"""
from __future__ import annotations

import numpy as np
from PyQt5 import QtCore, QtGui, QtWidgets

from viewer.app.pictures import GAP, TILE_HEIGHT, filter_picture
from viewer.gui.pixmaps import to_pixmap

MIN_TILE_HEIGHT, MAX_TILE_HEIGHT = 30, 120    # tiles shrink or grow to fit the panel
WAITING = "conv1 filters appear here once a map is drawn."
TILE_FRAME = 10            # a tile button's border and padding, until a tile measures it
ACCENT = "#ff8c00"
# The picked tile stands out: a thick accent frame on an accent ground.
TILE_STYLE = (f"QToolButton {{ border: 3px solid transparent; padding: 1px; }}"
              f"QToolButton:checked {{ border: 3px solid {ACCENT}; background: {ACCENT}; }}")


def numbered(picture: QtGui.QPixmap, number: int) -> QtGui.QPixmap:
    """The filter's number in the corner of its output, so tiles need no caption row."""
    painter = QtGui.QPainter(picture)
    text = f"#{number}"
    box = painter.fontMetrics().boundingRect(text).adjusted(-2, 0, 3, 0)
    box.moveTopRight(QtCore.QPoint(picture.width() - 1, 0))
    painter.fillRect(box, QtGui.QColor(0, 0, 0, 170))
    painter.setPen(QtGui.QColor(255, 255, 255))
    painter.drawText(box, QtCore.Qt.AlignCenter, text)
    painter.end()
    return picture


def tile_height(count: int, kernel: tuple[int, int], output: tuple[int, int], width: int,
                height: int, spacing: int, frame: QtCore.QSize = QtCore.QSize(TILE_FRAME,
                                                                          TILE_FRAME)) -> int:
    """The tallest tile pictures (MIN_TILE_HEIGHT to MAX_TILE_HEIGHT) of which `count` fit
    a `width` x `height` area without scrolling, so a large screen gets large tiles."""
    (kh, kw), (oh, ow) = kernel, output
    for size in range(MAX_TILE_HEIGHT, MIN_TILE_HEIGHT, -2):
        tile_w = (size // kh) * kw + GAP + round(size * ow / oh) + frame.width() + spacing
        columns = max(1, (width + spacing) // tile_w)
        if -(-count // columns) * (size + frame.height() + spacing) <= height:
            return size
    return MIN_TILE_HEIGHT


class Conv1Panel(QtWidgets.QScrollArea):
    """A grid of checkable filter tiles; `filter_clicked(k)` or `filter_clicked(-1)` to clear.

    `height_wanted(h)` asks for the tile pictures again at height `h` when the panel has
    grown or shrunk (they are drawn on a worker).
    """

    filter_clicked = QtCore.pyqtSignal(int)
    height_wanted = QtCore.pyqtSignal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        inner = QtWidgets.QWidget()
        self.grid = QtWidgets.QGridLayout(inner)
        self.grid.setSpacing(4)
        self.grid.setAlignment(QtCore.Qt.AlignTop | QtCore.Qt.AlignLeft)
        self.setWidget(inner)
        self.hint = QtWidgets.QLabel()
        self.hint.setWordWrap(True)
        self.grid.addWidget(self.hint, 0, 0)
        self.columns = 1
        self.group = QtWidgets.QButtonGroup(self)
        self.group.setExclusive(False)
        self.group.idClicked.connect(self._clicked)
        self.tiles: list[QtWidgets.QToolButton] = []
        self.selected: int | None = None
        self.outputs: np.ndarray | None = None     # the conv1 blob the tiles show
        self.kernel_shape = (5, 5)
        self.picture_height = TILE_HEIGHT
        self.hint.setText(WAITING)

    def set_filters(self, blob: str, kernels: np.ndarray, outputs: np.ndarray,
                    pictures: list[np.ndarray] | None = None) -> None:
        """Show K kernels (K x C x kh x kw) with their K outputs on the plate; `pictures` are
        their `filter_picture`s when the worker has drawn them already."""
        if len(self.tiles) != len(kernels):
            self._make_tiles(len(kernels))
        kh, kw = kernels.shape[2:]
        self.hint.setText(f"<b>{blob}</b>: {len(kernels)} filters of {kh}x{kw}: each kernel, then "
                          "its output on this plate (bright = strong response). Click one to "
                          "overlay it on the plate; click it again to go back to the classes.")
        if pictures is None:
            pictures = [filter_picture(kernels[k], outputs[k], self.best_height(outputs.shape))
                        for k in range(len(kernels))]
        self.outputs, self.kernel_shape = outputs, (kh, kw)
        self.picture_height = pictures[0].shape[0]
        for k, tile in enumerate(self.tiles):
            picture = numbered(to_pixmap(pictures[k]), k)
            tile.setIcon(QtGui.QIcon(picture))
            tile.setIconSize(picture.size())
        self._relayout(force=True)

    def best_height(self, shape: tuple[int, ...]) -> int:
        """The tile height for K outputs of `shape` (K x h x w) in the panel as it is now."""
        margins = self.grid.contentsMargins()
        room = self.viewport().size() - QtCore.QSize(margins.left() + margins.right(),
                                                     margins.top() + margins.bottom())
        hint = self.hint.heightForWidth(room.width())
        frame = self.tiles[0].sizeHint() - self.tiles[0].iconSize() if self.tiles else \
            QtCore.QSize(TILE_FRAME, TILE_FRAME)
        return tile_height(shape[0], self.kernel_shape, shape[1:], room.width(),
                           room.height() - max(hint, 0) - self.grid.spacing(),
                           self.grid.spacing(), frame)

    def clear(self) -> None:
        """No tiles until the next map's are drawn (a new image is being mapped)."""
        self.outputs = None
        for tile in self.tiles:
            tile.setIcon(QtGui.QIcon())
        self.hint.setText(WAITING)

    def tiles_show(self, fm) -> bool:
        """Do the tiles show this map's conv1 (they are drawn after the map)?"""
        return self.outputs is not None and self.outputs is fm.conv1

    def select(self, index: int | None) -> None:
        self.selected = index
        for k, tile in enumerate(self.tiles):
            tile.setChecked(k == index)

    def _clicked(self, index: int) -> None:
        index = -1 if index == self.selected else index
        self.select(None if index < 0 else index)
        self.filter_clicked.emit(index)

    def _make_tiles(self, count: int) -> None:
        for tile in self.tiles:
            self.group.removeButton(tile)
            tile.deleteLater()
        self.tiles = []
        for k in range(count):
            tile = QtWidgets.QToolButton()
            tile.setCheckable(True)
            tile.setStyleSheet(TILE_STYLE)
            tile.setToolButtonStyle(QtCore.Qt.ToolButtonIconOnly)
            tile.setToolTip(f"filter #{k}: click to overlay its output on the plate")
            self.group.addButton(tile, k)
            self.tiles.append(tile)
        self._relayout(force=True)

    def _relayout(self, force: bool = False) -> None:
        """As many tiles per row as the panel's width holds, so none is cut off."""
        if not self.tiles:
            return
        tile_width = self.tiles[0].sizeHint().width() + self.grid.spacing()
        margins = self.grid.contentsMargins()
        room = self.viewport().width() - margins.left() - margins.right()
        columns = max(1, (room + self.grid.spacing()) // max(1, tile_width))
        if columns == self.columns and not force:
            return
        self.columns = columns
        self.grid.removeWidget(self.hint)
        for tile in self.tiles:
            self.grid.removeWidget(tile)
        self.grid.addWidget(self.hint, 0, 0, 1, columns)
        for k, tile in enumerate(self.tiles):
            self.grid.addWidget(tile, 1 + k // columns, k % columns)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.outputs is not None:
            wanted = self.best_height(self.outputs.shape)
            if wanted != self.picture_height:
                self.height_wanted.emit(wanted)
        self._relayout()

