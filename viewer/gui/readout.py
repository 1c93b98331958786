"""What the net says under the cursor: the cell, its window, and a bar chart of class probabilities."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtWidgets

from viewer.featuremap import FeatureMap

TOP = 5
BAR = pg.mkBrush(110, 120, 140)
TOP_BAR = pg.mkBrush(255, 170, 40)


def top_classes(probs: np.ndarray, labels: list[str], count: int = TOP) -> list[tuple[str, float]]:
    """The `count` most probable classes of one cell, best first."""
    order = np.argsort(probs)[::-1][:count]
    return [(labels[k], float(probs[k])) for k in order]


class HoverReadout(QtWidgets.QWidget):
    """Cell, window and the probabilities of every class at the hovered cell."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QtWidgets.QLabel()
        self.title.setWordWrap(True)
        self.chart = pg.PlotWidget()
        self.chart.setMenuEnabled(False)
        self.chart.setMouseEnabled(False, False)
        self.chart.hideButtons()
        self.chart.setYRange(0, 1, padding=0.02)
        self.chart.setLabel("left", "probability")
        self.chart.setMinimumHeight(150)
        self.chart.getAxis("bottom").setTicks([[]])
        self.chart.getAxis("bottom").enableAutoSIPrefix(False)
        self.chart.setLabel("bottom", "classes (the top 5 are named)")
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8)
        self.chart.addItem(self.bars)
        self.names = [pg.TextItem(anchor=(0.5, 1.0), color=(255, 200, 120)) for _ in range(TOP)]
        for name in self.names:
            self.chart.addItem(name)
        self.top = QtWidgets.QLabel()
        self.top.setWordWrap(True)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.chart, 1)
        layout.addWidget(self.top)
        self.cell: tuple[int, int] | None = None
        self.clear()

    def clear(self) -> None:
        self.cell = None
        self.title.setText("Move the cursor over the plate to see what the net says about the "
                           "window under it.")
        self.bars.setOpts(x=[], height=[])
        for name in self.names:
            name.setText("")
        self.top.setText("")

    def show_cell(self, fm: FeatureMap, i: int, j: int) -> None:
        """Probabilities of cell (i, j); the top classes get their names on the axis."""
        self.cell = (i, j)
        probs = fm.probs[:, i, j]
        x, y, w, h = fm.geometry.cell_window(i, j)
        self.title.setText(f"<b>cell ({i}, {j})</b> of {fm.probs.shape[1]}x{fm.probs.shape[2]}: "
                           f"window at ({x:.0f}, {y:.0f}), {w:.0f}x{h:.0f} px")
        best = top_classes(probs, fm.labels)
        names = {fm.labels.index(label) for label, _ in best}
        brushes = [TOP_BAR if k in names else BAR for k in range(len(probs))]
        self.bars.setOpts(x=np.arange(len(probs)), height=probs, brushes=brushes)
        for name, (label, p) in zip(self.names, best):
            k = fm.labels.index(label)
            name.setText(label)
            # Centred over its bar, except at the ends, where a long name ("background", the
            # last class) would be cut off by the plot's edge.
            name.setAnchor((0.0 if k < 3 else 1.0 if k > len(probs) - 4 else 0.5, 1.0))
            name.setPos(k, p + 0.01)
        self.chart.setXRange(-0.5, len(probs) - 0.5, padding=0)
        self.top.setText("  ".join(f"<b>{label}</b> {p:.2f}" for label, p in best))

    def named(self) -> list[str]:
        """The class names written over the bars now (for tests)."""
        return [name.textItem.toPlainText() for name in self.names]

    def heights(self) -> np.ndarray:
        """The bar heights drawn now (for tests)."""
        return np.asarray(self.bars.opts["height"])
