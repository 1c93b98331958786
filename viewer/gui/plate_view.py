"""The plate in a pan-and-zoom view, with one map layer over it placed by the map's geometry.

Layers follow napari's idea: a map is data plus a transform (`heatmap_rect` from the core)
plus how it is drawn (opacity, colormap, levels). A single-channel map goes through the
histogram/LUT control; the best-class map is already RGB and has its own item.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore, QtGui, QtWidgets

Rect = tuple[float, float, float, float]

WINDOW_PEN = pg.mkPen((0, 220, 255), width=2, cosmetic=True)
HIGHLIGHT_PEN = pg.mkPen((120, 255, 80), width=3, cosmetic=True)
HISTOGRAM_WIDTH = 110


def _rect_item(pen: QtGui.QPen, z: float) -> QtWidgets.QGraphicsRectItem:
    item = QtWidgets.QGraphicsRectItem()
    item.setPen(pen)
    item.setZValue(z)
    item.setVisible(False)
    return item


class PlateView(pg.GraphicsLayoutWidget):
    """Plate image, heatmap layer, hover window and highlighted letter box.

    `hovered(x, y)` reports the cursor in original-image pixels; `left()` when it leaves;
    `painted()` fires after each paint, so a latency probe can see when a map is on screen.
    """

    hovered = QtCore.pyqtSignal(float, float)
    left = QtCore.pyqtSignal()
    painted = QtCore.pyqtSignal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = self.addViewBox(row=0, col=0, lockAspect=True, invertY=True)
        self.plate = pg.ImageItem()
        self.heat = pg.ImageItem()
        self.classes = pg.ImageItem()
        self.window_box = _rect_item(WINDOW_PEN, 20)
        self.highlight_box = _rect_item(HIGHLIGHT_PEN, 21)
        for z, item in enumerate((self.plate, self.heat, self.classes)):
            item.setZValue(z)
            self.view.addItem(item)
        self.view.addItem(self.window_box)
        self.view.addItem(self.highlight_box)
        self.histogram = pg.HistogramLUTItem()
        self.histogram.setImageItem(self.heat)
        self.histogram.setMaximumWidth(HISTOGRAM_WIDTH)
        self.addItem(self.histogram, row=0, col=1)
        # Its column keeps its width when it is hidden (the best-class map has no levels), so
        # the plate does not jump sideways when a channel is picked.
        self.ci.layout.setColumnFixedWidth(1, HISTOGRAM_WIDTH)
        self.levels_mode: str | None = None
        self.colormap: str | None = None
        self.scene().sigMouseMoved.connect(self._mouse_moved)

    # the plate -----------------------------------------------------------------------------
    def set_plate(self, pixels: np.ndarray) -> None:
        """Show a newly opened image in its own colors, fitted to the view."""
        self.plate.setImage(pixels, levels=(0, 255))
        self.fit()

    def fit(self) -> None:
        """The whole plate in view (Home). Only the plate counts: a map layer left from a
        larger image would otherwise shrink a new one to a speck in a corner."""
        self.view.autoRange(padding=0.02, items=[self.plate])

    # the map layer -------------------------------------------------------------------------
    def show_values(self, values: np.ndarray, rect: Rect, mode: str,
                    levels: tuple[float, float]) -> None:
        """One channel through the LUT; `levels` apply when `mode` differs from the last one,
        so the user's own level adjustment survives scale changes within a mode."""
        self.classes.setVisible(False)
        self.heat.setVisible(True)
        self.histogram.setVisible(True)
        self.heat.setImage(values, autoLevels=False)
        if mode != self.levels_mode:
            self.levels_mode = mode
            self.histogram.setLevels(*levels)
        else:
            self.heat.setLevels(self.histogram.getLevels())
        self.heat.setRect(QtCore.QRectF(*rect))

    def show_rgba(self, rgba: np.ndarray, rect: Rect) -> None:
        """A map with its own colors and alpha (the best character), drawn as is."""
        self.heat.setVisible(False)
        self.histogram.setVisible(False)
        self.classes.setVisible(True)
        self.classes.setImage(rgba, levels=(0, 255))
        self.classes.setRect(QtCore.QRectF(*rect))

    def clear_map(self) -> None:
        for item in (self.heat, self.classes):
            item.clear()
        self.set_window(None)
        self.set_highlight(None)

    def set_colormap(self, name: str) -> None:
        """Only when it changes: pyqtgraph rebuilds 256 gradient ticks (~30 ms per call)."""
        if name != self.colormap:
            self.colormap = name
            self.histogram.gradient.setColorMap(pg.colormap.get(name))

    def set_opacity(self, opacity: float) -> None:
        self.heat.setOpacity(opacity)
        self.classes.setOpacity(opacity)

    def active_map(self) -> pg.ImageItem:
        return self.classes if self.classes.isVisible() else self.heat

    # boxes ---------------------------------------------------------------------------------
    def set_window(self, rect: Rect | None) -> None:
        """The receptive-field window of the hovered cell, or nothing."""
        _place(self.window_box, rect)

    def set_highlight(self, rect: Rect | None) -> None:
        """The box of the letter picked in the confidence strip, or nothing."""
        _place(self.highlight_box, rect)

    # coordinates ---------------------------------------------------------------------------
    def image_to_widget(self, x: float, y: float) -> QtCore.QPoint:
        """Where original-image point (x, y) is on this widget, for tests and tooltips."""
        scene = self.view.mapViewToScene(QtCore.QPointF(x, y))
        return self.mapFromScene(scene)

    def _mouse_moved(self, scene_pos: QtCore.QPointF) -> None:
        if not self.view.sceneBoundingRect().contains(scene_pos):
            self.left.emit()
            return
        point = self.view.mapSceneToView(scene_pos)
        self.hovered.emit(point.x(), point.y())

    def leaveEvent(self, event: QtCore.QEvent) -> None:
        self.left.emit()
        super().leaveEvent(event)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        super().paintEvent(event)
        self.painted.emit()


def _place(item: QtWidgets.QGraphicsRectItem, rect: Rect | None) -> None:
    item.setVisible(rect is not None)
    if rect is not None:
        item.setRect(QtCore.QRectF(*rect))
