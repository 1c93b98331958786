"""What the net says under the cursor: the cell, its window, and a bar chart of class probabilities."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtWidgets

from viewer.maps.featuremap import FeatureMap

TOP = 5
NAMED = 0.01        # runners-up below this are not named over their bar (the winner always is)
HEADROOM = 1.35     # the chart's top: room for the names over a bar at P = 1
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
        self.chart.setYRange(0, HEADROOM, padding=0)
        self.chart.getAxis("left").setTicks([[(v, f"{v:g}") for v in (0, 0.25, 0.5, 0.75, 1)]])
        self.chart.setLabel("left", "probability")
        self.chart.setMinimumHeight(90)      # a 640x480 screen holds the window
        self.chart.getAxis("bottom").setTicks([[]])
        self.chart.getAxis("bottom").enableAutoSIPrefix(False)
        self.chart.setLabel("bottom", "classes (the likeliest are named)")
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
        self.chart.setXRange(-0.5, len(probs) - 0.5, padding=0)
        shown = [(label, p) for n, (label, p) in enumerate(best) if n == 0 or p >= NAMED]
        for name in self.names[len(shown):]:
            name.setText("")
        self._place_names(list(zip(self.names, shown)), fm.labels)
        self.top.setText("  ".join(f"<b>{label}</b> {p:.2f}" for label, p in best))

    def _place_names(self, named: list, labels: list[str]) -> None:
        """Each name just over its bar, best first; a name that would overlap one already
        placed goes up a line until it is free ("background" beside "6" read "backgro6und")."""
        dx, dy = self.chart.getViewBox().viewPixelSize()
        placed: list[tuple[float, float, float, float]] = []
        count = len(labels)
        for name, (label, p) in named:
            k = labels.index(label)
            name.setText(label)
            # Centred over its bar, except at the ends, where a long name ("background", the
            # last class) would be cut off by the plot's edge.
            ax = 0.0 if k < 3 else 1.0 if k > count - 4 else 0.5
            name.setAnchor((ax, 1.0))
            box = name.textItem.boundingRect()
            w, h = box.width() * dx, max(box.height() * dy, 0.05)   # 0 before the first layout
            x0, y = k - ax * w, p + 0.01
            while any(x0 < bx + bw and bx < x0 + w and y < by + bh and by < y + h
                      for bx, by, bw, bh in placed):
                y += h + dy     # a pixel apart
            placed.append((x0, y, w, h))
            name.setPos(k, y)

    def named(self) -> list[str]:
        """The class names written over the bars now (for tests)."""
        return [text for name in self.names if (text := name.textItem.toPlainText())]

    def heights(self) -> np.ndarray:
        """The bar heights drawn now (for tests)."""
        return np.asarray(self.bars.opts["height"])
