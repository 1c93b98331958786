"""The tutorial's "have a look at the training data", for a whole Caffe LMDB at once.

The LMDB is opened read-only by `dataset.lmdb_io` and only ever touched on the browser's own
worker thread, which indexes (key, label) once and then decodes just the page on screen.
"""
from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PyQt5 import QtCore, QtGui, QtWidgets

from viewer.app.pictures import enlarged, normalized
from viewer.gui.pixmaps import to_pixmap
from viewer.gui.worker import LatestWorker
from viewer.maps.labels import BACKGROUND_NAME, CHARACTERS

COLUMNS, ROWS = 10, 5
ZOOM = 3
DETAIL_ZOOM = 8     # the record picked in the grid, shown large beside it
PROGRESS_EVERY = 5000       # records between two progress reports of the index


STANDARD = list(CHARACTERS) + [BACKGROUND_NAME]


def label_name(label: int, names: list[str] | None = None) -> str:
    """The class name of a Datum label: our A-Z, 0-9, background order, unless the model
    has classes of its own (then its numbered names)."""
    if names and names[:len(CHARACTERS)] != list(CHARACTERS):
        return names[label] if 0 <= label < len(names) else str(label)
    return STANDARD[label] if 0 <= label < len(STANDARD) else str(label)


@dataclass
class DatasetIndex:
    """Every record's key and label, in key order, and how many of each label."""

    path: Path
    keys: list[str]
    labels: np.ndarray
    counts: dict[int, int]


def index_lmdb(reader, report=None, stop: threading.Event | None = None,
               every: int = PROGRESS_EVERY) -> DatasetIndex | None:
    """Every record's key and label (600k records take a while): `report(done, total)` every
    `every` records, and None as soon as `stop` is set."""
    keys, labels = [], []
    total = len(reader)
    for done, (key, label) in enumerate(reader.key_labels(), 1):
        keys.append(key)
        labels.append(label)
        if done % every == 0:
            if stop is not None and stop.is_set():
                return None
            if report is not None:
                report(done, total)
    counts = dict(sorted(Counter(labels).items()))
    return DatasetIndex(reader.path, keys, np.array(labels, int), counts)


def sample_picture(image: np.ndarray, zoom: int = ZOOM) -> np.ndarray:
    """A C x H x W record as an enlarged gray or RGB uint8 picture."""
    pixels = image[0] if image.shape[0] == 1 else image[:3].transpose(1, 2, 0)
    if pixels.dtype != np.uint8:
        pixels = normalized(pixels)
    return enlarged(np.ascontiguousarray(pixels), zoom)


class DatasetBrowser(QtWidgets.QWidget):
    """A window paging through an LMDB as a grid, filtered by label, with the class counts."""

    loaded = QtCore.pyqtSignal()      # the index is built
    indexing = QtCore.pyqtSignal(int, int)  # records indexed so far, of how many (any thread)
    page_shown = QtCore.pyqtSignal()  # a page of pictures is on screen

    def __init__(self, names: list[str] | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent, QtCore.Qt.Window)
        self.setWindowTitle("Training data")
        self.names = names
        self.reader = None
        self.index: DatasetIndex | None = None
        self.page = 0
        self._stop = threading.Event()
        self.worker = LatestWorker("lmdb")
        self.worker.done.connect(self._done)
        self.worker.failed.connect(self._failed)
        self._build()

    def _build(self) -> None:
        self.filter = QtWidgets.QComboBox()
        self.filter.currentIndexChanged.connect(lambda _: self.show_page(0))
        self.prev = QtWidgets.QPushButton("< Previous")
        self.next = QtWidgets.QPushButton("Next >")
        self.prev.clicked.connect(lambda: self.show_page(self.page - 1))
        self.next.clicked.connect(lambda: self.show_page(self.page + 1))
        self.status = QtWidgets.QLabel("Open an LMDB folder (File > Open training data).")
        self.progress = QtWidgets.QProgressBar()
        self.stop = QtWidgets.QPushButton("Stop")
        self.stop.setToolTip("Stop reading this LMDB")
        self.stop.clicked.connect(self.stop_indexing)
        self.indexing.connect(self._indexing)
        bar = QtWidgets.QHBoxLayout()
        for widget in (QtWidgets.QLabel("Label"), self.filter, self.prev, self.next):
            bar.addWidget(widget)
        bar.addWidget(self.status, 1)
        bar.addWidget(self.progress)
        bar.addWidget(self.stop)
        self._show_progress(False)
        self.grid = QtWidgets.QGridLayout()
        self.cells = [self._cell(k) for k in range(COLUMNS * ROWS)]
        self.counts = QtWidgets.QTableWidget(0, 2)
        self.counts.setHorizontalHeaderLabels(("label", "count"))
        self.counts.verticalHeader().setVisible(False)
        self.counts.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.counts.setFixedWidth(190)
        self.counts.horizontalHeader().setStretchLastSection(True)
        self.counts.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)
        self.counts.setToolTip("Click a label to see only its records; click it again for all")
        self.counts.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        self.counts.cellClicked.connect(lambda row, _column: self.filter_row(row))
        self.detail = QtWidgets.QLabel()
        self.detail.setAlignment(QtCore.Qt.AlignCenter)
        self.detail_text = QtWidgets.QLabel("Click a record to see it large.")
        self.detail_text.setAlignment(QtCore.Qt.AlignCenter)
        self.detail_text.setWordWrap(True)
        self.detail_text.setFixedWidth(190)
        side = QtWidgets.QVBoxLayout()
        side.addWidget(self.detail)
        side.addWidget(self.detail_text)
        side.addWidget(self.counts, 1)
        body = QtWidgets.QHBoxLayout()
        body.addLayout(self.grid)
        body.addLayout(side)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addLayout(body, 1)
        # Esc lets go of the enlarged record, and closes the window when none is shown;
        # Ctrl+W closes it (the platform's Close key is Ctrl+F4 on some desktops).
        QtWidgets.QShortcut(QtGui.QKeySequence("Esc"), self, self.escape)
        QtWidgets.QShortcut(QtGui.QKeySequence("Ctrl+W"), self, self.close)
        self.shown_record = None

    def _cell(self, k: int) -> "SampleCell":
        cell = SampleCell()
        cell.clicked.connect(self.show_record)
        self.grid.addWidget(cell, k // COLUMNS, k % COLUMNS)
        return cell

    def filter_row(self, row: int) -> None:
        """Only the records of the label in row `row` of the table (again: all of them)."""
        index = row + 1 if self.filter.currentIndex() != row + 1 else 0
        self.filter.setCurrentIndex(index)
        if index:
            self.counts.selectRow(row)
        else:
            self.counts.clearSelection()

    def escape(self) -> None:
        """Esc: the enlarged record goes, or, when there is none, the window closes."""
        if self.shown_record is None:
            self.close()
            return
        self.shown_record = None
        self.detail.clear()
        self.detail.setToolTip("")
        self.detail_text.setText("Click a record to see it large.")

    def show_record(self, record) -> None:
        """One record large, with its key, label and size."""
        self.shown_record = record
        name = label_name(record.label, self.names)
        picture = sample_picture(record.image, DETAIL_ZOOM)
        self.detail.setPixmap(to_pixmap(picture))
        self.detail.setToolTip(f"key {record.key}, label {record.label} ({name})")
        self.detail_text.setText(
            f"<b>{name}</b><br>key {record.key}<br>label {record.label}<br>"
            f"{'x'.join(map(str, record.image.shape))} ({record.image.dtype})")

    # loading -------------------------------------------------------------------------------
    def open(self, reader) -> None:
        """Take an opened `LmdbReader` (its folder was checked by the caller) and index it."""
        self.close_reader()
        self.reader = reader
        self.setWindowTitle(f"Training data: {reader.path}")
        self.status.setText(f"reading {len(reader)} records...")
        self.progress.setRange(0, len(reader))
        self.progress.setValue(0)
        self._show_progress(True)
        stop = self._stop = threading.Event()
        self.worker.submit("index", lambda: index_lmdb(reader, self.indexing.emit, stop,
                                                             PROGRESS_EVERY), reader)

    def _show_progress(self, shown: bool) -> None:
        self.progress.setVisible(shown)
        self.stop.setVisible(shown)

    def _indexing(self, done: int, total: int) -> None:
        if not self._stop.is_set():
            self.progress.setValue(done)
            self.status.setText(f"reading {done} of {total} records...")

    def stop_indexing(self) -> None:
        """Stop reading the LMDB being indexed (a large one takes a while) and close it."""
        self._stop.set()

    def close_reader(self) -> None:
        self._stop.set()
        if self.reader is not None:
            reader, self.reader = self.reader, None
            self.worker.submit(f"close {id(reader)}", reader.close)

    def _done(self, kind: str, tag, result) -> None:
        if kind == "index":
            if tag is not self.reader:          # an LMDB closed or replaced since
                return
            self._show_progress(False)
            # Stop pressed after the worker's last look at it still stops: the user asked to.
            if result is None or self._stop.is_set():
                self._stopped()
            else:
                self._indexed(result)
        elif kind == "page" and tag == (self.page, self.filter.currentData()):
            self._show_records(result)

    def _stopped(self) -> None:
        if self.reader is not None:
            self.status.setText(f"stopped reading {self.reader.path.name}; open it again "
                                "to browse it")
        self.close_reader()

    def _failed(self, kind: str, tag, message: str) -> None:
        if kind == "index":
            self._show_progress(False)
        self.status.setText(message)
        QtWidgets.QMessageBox.warning(self, "Training data", message)

    def _indexed(self, index: DatasetIndex) -> None:
        self.index = index
        self.filter.blockSignals(True)
        self.filter.clear()
        self.filter.addItem(f"all ({len(index.keys)})", None)
        for label, count in index.counts.items():
            self.filter.addItem(f"{label_name(label, self.names)} ({count})", label)
        self.filter.blockSignals(False)
        self.counts.setRowCount(len(index.counts))
        for row, (label, count) in enumerate(index.counts.items()):
            self.counts.setItem(row, 0, QtWidgets.QTableWidgetItem(label_name(label, self.names)))
            self.counts.setItem(row, 1, QtWidgets.QTableWidgetItem(str(count)))
        self.loaded.emit()
        self.show_page(0)

    # paging --------------------------------------------------------------------------------
    def selected_keys(self) -> list[str]:
        if self.index is None:
            return []
        label = self.filter.currentData()
        if label is None:
            return self.index.keys
        return [k for k, l in zip(self.index.keys, self.index.labels) if l == label]

    def page_count(self) -> int:
        return max(1, -(-len(self.selected_keys()) // len(self.cells)))

    def show_page(self, page: int) -> None:
        if self.index is None or self.reader is None:
            return
        self.page = min(max(page, 0), self.page_count() - 1)
        keys = self.selected_keys()[self.page * len(self.cells):(self.page + 1) * len(self.cells)]
        reader = self.reader
        self.worker.submit("page", lambda: [reader.get(k) for k in keys],
                           (self.page, self.filter.currentData()))
        self.prev.setEnabled(self.page > 0)
        self.next.setEnabled(self.page + 1 < self.page_count())

    def _show_records(self, records: list) -> None:
        for cell, record in zip(self.cells, records + [None] * len(self.cells)):
            cell.show_record(record, self.names)
        self._caption(records)
        self.page_shown.emit()

    def _caption(self, records: list) -> None:
        total = len(self.selected_keys())
        shape = "x".join(map(str, records[0].shape)) if records else "-"
        self.status.setText(f"page {self.page + 1} of {self.page_count()}: {total} records "
                            f"({shape} each) in {self.index.path.name}")

    def closeEvent(self, event) -> None:
        self.close_reader()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Close the LMDB and end the worker thread (when the application quits)."""
        self.close_reader()
        self.worker.stop()


class SampleCell(QtWidgets.QWidget):
    """One record: its picture and its label name underneath; `clicked(record)`."""

    clicked = QtCore.pyqtSignal(object)

    def __init__(self) -> None:
        super().__init__()
        self.record = None
        self.picture = QtWidgets.QLabel()
        self.picture.setAlignment(QtCore.Qt.AlignCenter)
        self.picture.setMinimumSize(28 * ZOOM + 4, 28 * ZOOM + 4)
        self.caption = QtWidgets.QLabel()
        self.caption.setAlignment(QtCore.Qt.AlignCenter)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(0)
        layout.addWidget(self.picture)
        layout.addWidget(self.caption)

    def mousePressEvent(self, event) -> None:
        if self.record is not None and event.button() == QtCore.Qt.LeftButton:
            self.clicked.emit(self.record)
        super().mousePressEvent(event)

    def show_record(self, record, names: list[str] | None) -> None:
        self.record = record
        if record is None:
            self.picture.clear()
            self.caption.clear()
            self.setToolTip("")
            return
        name = label_name(record.label, names)
        self.picture.setPixmap(to_pixmap(sample_picture(record.image)))
        self.caption.setText(f"<b>{name}</b>")
        self.setToolTip(f"key {record.key}, label {record.label} ({name})")
