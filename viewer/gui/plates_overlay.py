"""Plates found in a photo, drawn over it as boxes with their text; Shift-drag reads a region.

The boxes come from `locate` (the same call as `read PHOTO`); this only draws them, tells
the window which one was clicked (`plate_clicked`), and which rectangle the user dragged with
Shift held (`region_drawn`, in image pixels). The window decides what follows.
"""
from __future__ import annotations

import pyqtgraph as pg
from PyQt5 import QtCore, QtWidgets

from viewer.plates.locate import Box, FoundPlate

PLATE_PEN = pg.mkPen((255, 200, 0), width=2, cosmetic=True)
CHOSEN_PEN = pg.mkPen((255, 80, 40), width=3, cosmetic=True)
REGION_PEN = pg.mkPen((255, 255, 255), width=1, style=QtCore.Qt.DashLine, cosmetic=True)
ZOOM_MARGIN = 0.6            # around a clicked plate, in plate heights


class _PlateBox(QtWidgets.QGraphicsRectItem):
    """One plate's box; pyqtgraph's scene delivers clicks to `mouseClickEvent`."""

    def __init__(self, box: Box, on_click) -> None:
        super().__init__(QtCore.QRectF(*box))
        self.on_click = on_click
        self.setPen(PLATE_PEN)
        self.setZValue(30)

    def mouseClickEvent(self, event) -> None:
        if event.button() == QtCore.Qt.LeftButton:
            event.accept()
            self.on_click()


class PlatesOverlay(QtCore.QObject):
    """The found plates on a pyqtgraph ViewBox, and the Shift-drag region picker on it."""

    plate_clicked = QtCore.pyqtSignal(int)
    region_drawn = QtCore.pyqtSignal(int, int, int, int)
    progressed = QtCore.pyqtSignal(int, int)   # a search's (done, total), from its worker

    def __init__(self, view: pg.ViewBox) -> None:
        super().__init__(view)
        self.view = view
        self.boxes: list[_PlateBox] = []
        self.labels: list[pg.TextItem] = []
        self.plates: list[FoundPlate] = []
        self.chosen: int | None = None
        self.region = QtWidgets.QGraphicsRectItem()
        self.region.setPen(REGION_PEN)
        self.region.setZValue(31)
        self.region.setVisible(False)
        view.addItem(self.region)
        self.shown_region: tuple | None = None    # the state's region (the rubber band aside)
        self.dragging = False                 # a Shift-drag is under way
        self._aborted = False                 # Esc during it: the rest of the drag is ignored
        self._view_drag = view.mouseDragEvent
        view.mouseDragEvent = self._drag      # Shift-drag here; any other drag pans as before

    def set_plates(self, plates: list[FoundPlate]) -> None:
        """Draw one box per plate with its text above it; none is chosen yet."""
        self._remove_plates()
        self.plates = list(plates)
        for index, plate in enumerate(self.plates):
            box = _PlateBox(plate.box, lambda k=index: self.plate_clicked.emit(k))
            label = pg.TextItem(plate.text, color=(255, 200, 0), anchor=(0, 1),
                                fill=pg.mkBrush(0, 0, 0, 150))
            label.setPos(plate.box[0], plate.box[1])
            label.setZValue(30)
            for item in (box, label):
                self.view.addItem(item)
            self.boxes.append(box)
            self.labels.append(label)

    def choose(self, index: int | None) -> None:
        """Draw plate `index` as the chosen one (None: none)."""
        self.chosen = index
        for k, box in enumerate(self.boxes):
            box.setPen(CHOSEN_PEN if k == index else PLATE_PEN)

    def zoom_to(self, index: int) -> None:
        """Fit the view around plate `index`, with a margin of some plate heights."""
        x, y, w, h = self.plates[index].box
        m = ZOOM_MARGIN * h
        self.view.setRange(QtCore.QRectF(x - m, y - m, w + 2 * m, h + 2 * m), padding=0)

    def clear(self) -> None:
        """No plates and no region (a new image)."""
        self._remove_plates()
        self.show_region(None)

    def _remove_plates(self) -> None:
        for item in self.boxes + self.labels:
            self.view.removeItem(item)
        self.boxes, self.labels, self.plates, self.chosen = [], [], [], None

    def show_region(self, region: tuple[int, int, int, int] | None) -> None:
        """The region being read (the state's), or none."""
        self.shown_region = region
        if region is not None:
            self.region.setRect(QtCore.QRectF(*region))
        self.region.setVisible(region is not None)

    def abort_drag(self) -> bool:
        """Esc during a Shift-drag: the rubber band goes and the drag reads nothing. True when
        a drag was aborted."""
        if not self.dragging:
            return False
        self.dragging, self._aborted = False, True
        self.show_region(self.shown_region)     # the rubber band goes; the state's stays
        return True

    def _drag(self, event, axis=None) -> None:
        """A Shift-drag with the left button draws the region to read; the rest is the view's."""
        shift = event.modifiers() & QtCore.Qt.ShiftModifier
        if self._aborted or event.button() != QtCore.Qt.LeftButton or not shift:
            if self._aborted:
                event.accept()
                self._aborted = not event.isFinish()
            else:
                self._view_drag(event, axis)
            return
        event.accept()
        start = self.view.mapToView(event.buttonDownPos())
        end = self.view.mapToView(event.pos())
        rect = QtCore.QRectF(start, end).normalized()
        self.region.setRect(rect)
        self.region.setVisible(True)
        self.dragging = not event.isFinish()
        if event.isFinish():
            self.drawn(rect.x(), rect.y(), rect.width(), rect.height())

    def drawn(self, x: float, y: float, w: float, h: float) -> None:
        """A region drawn in image pixels: emitted in whole pixels, at least one wide (the
        state's region event then shows what is read)."""
        self.show_region(self.shown_region)
        self.region_drawn.emit(round(x), round(y), max(1, round(w)), max(1, round(h)))
