""""Why <class> here": one cell's attribution over the plate and the same cell by every method.

The pictures are drawn without Qt (`viewer.maps.attribution_pictures`, as the `explain`
command draws its PNGs); the panel only shows them and sends the user's picks: the method of
the large picture, and a runner-up to explain the class against ("why H and not W").
"""
from __future__ import annotations

from PyQt5 import QtCore, QtWidgets

from viewer.gui.pixmaps import to_pixmap
from viewer.maps import attribution_pictures as pictures
from viewer.maps.attribution import METHODS, Explanation

ALONE = "(alone)"
RUNNERS_UP = 5
PLATE_WIDTH = 420       # pixels of the panel the plate may take beside the row


class ExplainPanel(QtWidgets.QWidget):
    """The explanation of the asked cell; `versus_changed(label or "")` picks a runner-up."""

    versus_changed = QtCore.pyqtSignal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QtWidgets.QLabel()
        self.title.setWordWrap(True)
        self.method = QtWidgets.QComboBox()
        self.method.addItems(METHODS)
        self.method.setToolTip("The method drawn over the plate (red raised the score, blue "
                               "lowered it)")
        self.versus = QtWidgets.QComboBox()
        self.versus.setToolTip("Explain the class against a runner-up: the difference of "
                               "their scores (why H and not W)")
        self.plate = QtWidgets.QLabel()
        self.row = QtWidgets.QLabel()
        for picture in (self.plate, self.row):
            picture.setAlignment(QtCore.Qt.AlignLeft | QtCore.Qt.AlignTop)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(QtWidgets.QLabel("Method"))
        top.addWidget(self.method)
        top.addWidget(QtWidgets.QLabel("against"))
        top.addWidget(self.versus)
        scroll = QtWidgets.QScrollArea()
        inner = QtWidgets.QWidget()
        column = QtWidgets.QHBoxLayout(inner)
        column.addWidget(self.plate)
        column.addWidget(self.row)
        column.addStretch(1)
        scroll.setWidget(inner)
        scroll.setWidgetResizable(True)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(scroll, 1)
        self.explanation: Explanation | None = None
        self.method.currentTextChanged.connect(lambda _: self._draw())
        self.versus.activated.connect(self._versus_picked)
        self.clear()

    def clear(self) -> None:
        self.explanation = None
        self.title.setText("Press a letter card, or Shift+E over a cell, to see why the net "
                           "says its class there.")
        self.plate.clear()
        self.row.clear()
        self.versus.clear()

    def show_explanation(self, explanation: Explanation | None) -> None:
        """Show an explanation, offering the cell's runners-up to explain it against."""
        if explanation is None:
            self.clear()
            return
        self.explanation = explanation
        e = explanation
        against = f" and not {e.versus_label}" if e.versus_label else ""
        self.title.setText(f"<b>Why {e.label}{against} here</b>: cell ({e.cell[0]}, "
                           f"{e.cell[1]}), score {e.score:.2f} ({e.target}); gradcam at "
                           f"{e.layer}")
        chosen = e.versus_label or ALONE
        self.versus.blockSignals(True)
        self.versus.clear()
        self.versus.addItems([ALONE, *[r for r in e.ranking if r != e.label][:RUNNERS_UP]])
        self.versus.setCurrentText(chosen)
        self.versus.blockSignals(False)
        self._draw()

    def versus_label(self) -> str:
        text = self.versus.currentText()
        return "" if text == ALONE else text

    def _versus_picked(self, index: int) -> None:
        self.versus_changed.emit(self.versus_label())

    def _draw(self) -> None:
        e = self.explanation
        if e is None:
            return
        row = pictures.method_row(e)
        plate = pictures.overlay(e, self.method.currentText())
        zoom = (row.shape[0] - 14) / plate.shape[0]     # as tall as the row's tiles
        if plate.shape[1] * zoom > PLATE_WIDTH:         # a photo: the plate near the cell
            plate = pictures.around_window(plate, e, 1.5)
            zoom = min(PLATE_WIDTH / plate.shape[1], (row.shape[0] - 14) / plate.shape[0])
        self.plate.setPixmap(to_pixmap(plate).scaled(round(plate.shape[1] * zoom),
                                                     round(plate.shape[0] * zoom)))
        self.row.setPixmap(to_pixmap(row))

    def shown_method(self) -> str:
        return self.method.currentText()
