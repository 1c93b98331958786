"""The read characters under the plate, each with its probability and runners-up; click to select."""
from __future__ import annotations

from typing import Any

from PyQt5 import QtCore, QtWidgets

from viewer.app.scale import scale_text

RUNNERS_UP = 2


class LetterButton(QtWidgets.QPushButton):
    """One read character: big label, its probability, and the next most likely classes."""

    def __init__(self, letter: Any, size: float = 1.0,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.letter = letter
        self.setCheckable(True)
        others = [f"{label} {p:.2f}" for label, p in letter.top[1:1 + RUNNERS_UP]]
        text = QtWidgets.QLabel(
            f"<div align='center' style='font-size:{9 * size:.0f}pt'>"
            f"<span style='font-size:{15 * size:.0f}pt; font-weight:600'>{letter.label}"
            f"</span><br>{letter.shown:.2f}<br><span style='color:#777'>"
            f"{'<br>'.join(others)}</span></div>")
        text.setAttribute(QtCore.Qt.WA_TransparentForMouseEvents)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addWidget(text)
        self.setMinimumSize(text.sizeHint() + QtCore.QSize(10, 6))
        softmax = ", ".join(f"{label} {p:.3f}" for label, p in letter.top)
        self.setToolTip(f"cell {letter.cell}: confidence {letter.shown:.3f}, read alike at "
                        f"{letter.agreement:.0%} of the scales beside; the net's softmax "
                        f"{softmax}")


class LetterStrip(QtWidgets.QWidget):
    """What the plate reads as; `letter_clicked(index)` when a character is picked."""

    letter_clicked = QtCore.pyqtSignal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QtWidgets.QLabel()
        self.summary.setMinimumWidth(150)
        self.summary.setWordWrap(True)
        self.group = QtWidgets.QButtonGroup(self)
        self.group.setExclusive(True)
        self.group.idClicked.connect(self.letter_clicked)
        cards = QtWidgets.QWidget()
        self.row = QtWidgets.QHBoxLayout(cards)
        self.row.setContentsMargins(0, 0, 0, 0)
        self.row.setSpacing(4)
        self.row.addStretch(1)
        # The cards scroll sideways in a narrow window instead of widening it past the screen
        # (at 640x480 the docks were pushed off it).
        self.cards = QtWidgets.QScrollArea()
        self.cards.setWidget(cards)
        self.cards.setWidgetResizable(True)
        self.cards.setFrameShape(QtWidgets.QFrame.NoFrame)
        self.cards.setVerticalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addWidget(self.summary)
        layout.addWidget(self.cards, 1)
        self.buttons: list[LetterButton] = []
        self.size = 1.0
        self.reading: Any = None
        self.reset()

    def set_size(self, size: float) -> None:
        """Cards `size` times the usual, so a large screen does not leave them small."""
        if size != self.size:
            self.size = size
            if self.reading is not None:
                self.set_reading(self.reading)

    def reset(self) -> None:
        """Nothing read yet (a new image is being mapped)."""
        self.show_message("Reading appears here once a map is drawn.")

    def show_message(self, message: str) -> None:
        self._clear()
        self.reading = None
        self.summary.setText(message)

    def set_reading(self, reading: Any) -> None:
        """Show a `reading.PlateReading`: its text and one button per letter."""
        self._clear()
        self.reading = reading
        text = reading.text or "(nothing)"
        self.summary.setText(f"<b>Reads</b><br><span style='font-size:14pt'>{text}</span>"
                             f"<br>at scale {scale_text(reading.scale)}")
        for k, letter in enumerate(reading.letters):
            button = LetterButton(letter, self.size)
            self.group.addButton(button, k)
            self.row.insertWidget(k, button)
            self.buttons.append(button)
        self._fit_height()

    def _fit_height(self) -> None:
        """The cards' row is as tall as the cards and a scroll bar, so none is cut."""
        tallest = max((max(b.sizeHint().height(), b.minimumHeight()) for b in self.buttons),
                      default=0)
        bar = self.cards.horizontalScrollBar().sizeHint().height()
        self.cards.setFixedHeight(max(tallest + bar + 2, self.summary.sizeHint().height()))

    def select(self, index: int | None) -> None:
        """Check one letter, or none (an exclusive group would refuse to uncheck the last)."""
        self.group.setExclusive(False)
        for k, button in enumerate(self.buttons):
            button.setChecked(k == index)
        self.group.setExclusive(True)

    def _clear(self) -> None:
        for button in self.buttons:
            self.group.removeButton(button)
            button.deleteLater()
        self.buttons = []
