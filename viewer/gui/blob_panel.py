"""Any blob of the net, its channels tiled side by side, so nets other than ours can be explored.

A blob of many channels (a zoo net's 1000 class scores) is shown a page at a time; the Find box
goes to a channel by its number or class name, and frames its tile. Captions are sized to the
tiles on screen and left out where they would not fit; unused slots of the grid are dark.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore, QtGui, QtWidgets

from viewer.maps import render

PAGE = 64                           # channels a page
BLANK = (38, 42, 52)                # an unused slot: no channel is that blue-gray
FOUND_PEN = pg.mkPen((255, 80, 40), width=2, cosmetic=True)
CAPTION_SHARE = 0.22                # of a tile's height on screen, at most, for its caption


def blob_sheet(values: np.ndarray, columns: int, gap: int = 2) -> np.ndarray:
    """The channels tiled (`render.tile_channels`) as RGB on BLANK: the gaps and the grid's
    unused slots (white drowned 1x1 tiles in their gaps)."""
    gray = render.tile_channels(values, columns, gap)
    sheet = np.empty(gray.shape + (3,), np.uint8)
    sheet[:] = BLANK
    h, w = values.shape[1:]
    for k in range(len(values)):
        r, c = divmod(k, columns)
        tile = (slice(r * (h + gap), r * (h + gap) + h), slice(c * (w + gap), c * (w + gap) + w))
        sheet[tile] = gray[tile][..., None]
    return sheet


def find_channel(text: str, count: int, names: list[str]) -> int | None:
    """The channel `text` names: a class name (exact, then the first that starts with it,
    case-insensitive), else a channel number."""
    wanted = text.strip().lower()
    if not wanted:
        return None
    lowered = [n.lower() for n in names]
    for match in (lambda n: n == wanted, lambda n: n.startswith(wanted)):
        hit = next((k for k, n in enumerate(lowered) if match(n)), None)
        if hit is not None:
            return hit
    return int(wanted) if wanted.isdigit() and int(wanted) < count else None


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
        self.page_box = QtWidgets.QSpinBox()
        self.page_box.setPrefix("page ")
        self.page_box.setToolTip(f"{PAGE} channels a page")
        self.page_box.setMinimum(1)
        self.page_box.valueChanged.connect(lambda page: self.show_page(page - 1))
        self.find = QtWidgets.QLineEdit()
        self.find.setPlaceholderText("Find channel")
        self.find.setToolTip("A class name or a channel number: goes to its page and frames it")
        self.find.setMaximumWidth(130)
        self.find.returnPressed.connect(lambda: self.find_text(self.find.text()))
        self.canvas = pg.GraphicsLayoutWidget()
        self.view = self.canvas.addViewBox(lockAspect=True, invertY=True)
        self.image = pg.ImageItem()
        self.view.addItem(self.image)
        self.found = QtWidgets.QGraphicsRectItem()
        self.found.setPen(FOUND_PEN)
        self.found.setZValue(20)
        self.found.setVisible(False)
        self.view.addItem(self.found)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("Blob"))
        top.addWidget(self.picker)
        top.addWidget(self.info, 1)
        top.addWidget(self.page_box)
        top.addWidget(self.find)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.canvas, 1)
        self.picker.currentTextChanged.connect(self._picked)
        self.values: np.ndarray | None = None      # the whole blob, C x h x w
        self.page = 0
        self.chosen: int | None = None              # the channel found, framed
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
            self.found.setVisible(False)
            self.page_box.setVisible(False)
            self.info.setText("computing..." if name else "")
            return
        values = values[:, None, None] if values.ndim == 1 else values
        c, h, w = values.shape
        same = self.values is not None and len(self.values) == c
        self.info.setText(f"{c} channels of {h}x{w}, range {values.min():.3g} to "
                          f"{values.max():.3g}")
        self.values = values
        self.names = list(labels) if labels is not None and len(labels) == c else []
        pages = -(-c // PAGE)
        self.page_box.blockSignals(True)
        self.page_box.setMaximum(pages)
        self.page_box.setSuffix(f" of {pages}")
        self.page_box.blockSignals(False)
        self.page_box.setVisible(pages > 1)
        self.find.setVisible(c > 1)
        if not same:
            self.page, self.chosen = 0, None
        self.show_page(min(self.page, pages - 1))

    def shown(self) -> np.ndarray | None:
        """The channels of the page on screen."""
        if self.values is None:
            return None
        return self.values[self.page * PAGE:(self.page + 1) * PAGE]

    def show_page(self, page: int) -> None:
        """Tile page `page` (0-based) of the blob."""
        self.page = page
        self.page_box.blockSignals(True)
        self.page_box.setValue(page + 1)
        self.page_box.blockSignals(False)
        self.columns = 0
        self._tile()

    def find_text(self, text: str) -> int | None:
        """Go to the channel `text` names (see `find_channel`) and frame it; None: no such."""
        if self.values is None:
            return None
        found = find_channel(text, len(self.values), self.names)
        self.chosen = found
        if found is None:
            self.found.setVisible(False)
            self.info.setText(f"no channel '{text}' in {self.blob()}")
            return None
        self.show_page(found // PAGE)
        return found

    def _clear_captions(self) -> None:
        for caption in self.captions:
            self.view.removeItem(caption)
        self.captions = []

    def tile_pixels(self) -> float:
        """How tall a tile is on screen, in pixels."""
        shown = self.shown()
        if shown is None or not self.columns:
            return 0.0
        h, w = shown.shape[1:]
        rows = -(-len(shown) // self.columns)
        sheet = (rows * (h + 2) - 2, self.columns * (w + 2) - 2)
        fit = min(self.canvas.width() / sheet[1], self.canvas.height() / sheet[0])
        return h * fit

    def _caption(self) -> None:
        """Each class tile's name in its top-left corner, in a font that keeps to the top
        CAPTION_SHARE of the tile; none when that is below a readable size."""
        self._clear_captions()
        shown = self.shown()
        h, w = shown.shape[1:]
        size = int(self.tile_pixels() * CAPTION_SHARE)
        if size < 7 or not self.names:
            return
        font = QtGui.QFont()
        font.setPixelSize(min(size, 12))
        first = self.page * PAGE
        for k, name in enumerate(self.names[first:first + len(shown)]):
            r, c = divmod(k, self.columns)
            caption = pg.TextItem(name, color=(255, 170, 40), fill=(0, 0, 0, 160), anchor=(0, 0))
            caption.setFont(font)
            caption.setPos(c * (w + 2), r * (h + 2))
            self.view.addItem(caption)
            self.captions.append(caption)

    def _frame(self) -> None:
        """A frame round the channel found, when it is on this page."""
        shown, chosen = self.shown(), self.chosen
        on_page = chosen is not None and self.page * PAGE <= chosen < self.page * PAGE + PAGE
        self.found.setVisible(on_page)
        if on_page:
            h, w = shown.shape[1:]
            r, c = divmod(chosen - self.page * PAGE, self.columns)
            self.found.setRect(QtCore.QRectF(c * (w + 2) - 1, r * (h + 2) - 1, w + 2, h + 2))

    def _tile(self) -> None:
        """Lay the channels out for the canvas's current shape (again when it changes)."""
        shown = self.shown()
        if shown is None or not self.isVisible():
            return
        columns = best_columns(len(shown), shown.shape[1:], self.canvas.width(),
                               self.canvas.height())
        if columns != self.columns:
            self.columns = columns
            self.image.setImage(blob_sheet(shown, columns), levels=(0, 255))
            self.view.autoRange(padding=0.01, items=[self.image])
        self._caption()
        self._frame()

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
