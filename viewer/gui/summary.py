"""The status bar's permanent summary of the map on screen (what, stride, scale, timing, engine).

A permanent widget, so menu tips and "saved ..." messages never replace it, elided to the room
it gets so it never overlaps the busy indicator; the whole text is its tooltip.
"""
from __future__ import annotations

from PyQt5 import QtCore, QtGui, QtWidgets


class SummaryLabel(QtWidgets.QLabel):
    """One line of text, elided on the right when the status bar is narrower than it."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.full = ""
        self.setSizePolicy(QtWidgets.QSizePolicy.Ignored, QtWidgets.QSizePolicy.Preferred)

    def set_summary(self, text: str) -> None:
        self.full = text
        self.setToolTip(text)
        self._elide()

    def text_shown(self) -> str:
        """What fits on screen now (for tests)."""
        return super().text()

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self.full, QtCore.Qt.ElideRight, self.width())
        if shown != super().text():
            self.setText(shown)
