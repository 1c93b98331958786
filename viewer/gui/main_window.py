"""The main window: the plate with its map layer, the controls, the panels, and their wiring.

The window lays the widgets out and wires them. What they show is the state's
(`viewer.app.state`: model, image, map, scale, picks), which they follow through `bindings`;
what the user does goes to the state or to the controller (`viewer.app.controller`), which
hands the slow work to worker threads. Requests are tagged with a generation that changes
with the image or model, so a late answer to an old request is dropped. Everything slow (maps,
the automatic scale, opening a model, the surgery timing) can be cancelled (the Cancel
button, or Esc).
"""
from __future__ import annotations

from pathlib import Path

from PyQt5 import QtCore, QtGui, QtWidgets

from viewer.app import fine
from viewer.app.controller import Controller, Runners
from viewer.app.jobs import JobKind, ModelTag
from viewer.app.session import LoadedImage, LoadedModel
from viewer.app.state import ViewerState
from viewer.gui import bindings
from viewer.gui.blob_panel import BlobPanel
from viewer.gui.controls import ChannelPicker, LayerControls, ScaleControl
from viewer.gui.conv1_panel import Conv1Panel
from viewer.gui.explain_panel import ExplainPanel
from viewer.gui.letter_strip import LetterStrip
from viewer.gui.menus import WindowMenus, WindowParts
from viewer.gui.model_loader import ModelLoader
from viewer.gui.plate_view import PlateView
from viewer.gui.plates_overlay import PlatesOverlay
from viewer.gui.readout import HoverReadout
from viewer.gui.settings import Settings
from viewer.gui.summary import SummaryLabel
from viewer.gui.surgery_panel import SurgeryPanel
from viewer.gui.worker import LatestWorker

TITLE = "Net Surgery Viewer"
READOUT_FLOOR = 220     # px: "Under the cursor" narrower than this is squeezed, not chosen


class MainWindow(QtWidgets.QMainWindow):
    """Everything on screen; `map_shown` fires each time a new map has been drawn, and
    `map_failed(message)` when the map asked for cannot be made (the message is on screen);
    `panels_shown` when the conv1 tiles of the map on screen have followed it.

    Without a `scale`, the window opens at the scale `reading.auto_read` chooses, as it does
    for each image opened later; `scale` (from `--scale`) wins.
    """

    map_shown = QtCore.pyqtSignal()
    map_failed = QtCore.pyqtSignal(str)
    panels_shown = QtCore.pyqtSignal()
    check_shown = QtCore.pyqtSignal()
    saved = QtCore.pyqtSignal(str)     # a file written in the background is complete

    def __init__(self, model: LoadedModel, image: LoadedImage, settings: Settings,
                 channel: str | None = None, scale: float | None = None,
                 auto_check: bool = True) -> None:
        super().__init__()
        self.settings = settings
        self.state = ViewerState(model, image, channel, settings.view_options())
        self.maps = LatestWorker("maps")
        self.slow = LatestWorker("surgery")
        self.panels = LatestWorker("panels")   # conv1 tiles, drawn after the heatmap is shown
        self.saving = LatestWorker("saving")   # files written in the background (maps: 64 MB)
        self.fractions: dict[str, float] = {}  # how far each busy kind of work is, when known
        self.loader = ModelLoader(self.maps, lambda question: self.confirm(question))
        self._build()
        # `auto_check`: time the surgery after each new model or image.
        self.controller = Controller(self.state, Runners(self.maps, self.slow, self.panels,
                                                         self.saving),
                                     auto_check, self.found.progressed.emit)
        self.files = WindowMenus(WindowParts(
            self, settings, self.loader, self.plate.fit,
            lambda: tuple(self.plate.histogram.getLevels()), self.fine_action,
            [self.readout_dock.toggleViewAction(), self.net_dock.toggleViewAction()]),
            self.state, self.controller)
        self.files.build()
        self._connect()
        self.setAcceptDrops(True)
        self.state.announce()
        self.controller.start(scale)

    # building ------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.setWindowTitle(TITLE)
        self.plate = PlateView()
        # Drops go to the window, which knows images, nets and LMDBs (see dropEvent).
        self.plate.setAcceptDrops(False)
        self.plate.viewport().setAcceptDrops(False)
        self.letters = LetterStrip()
        self.legend = QtWidgets.QLabel()
        self.legend.setToolTip("The colours of the best-class picture: each class the net is "
                               "sure of somewhere on this map, left to right")
        # The plate keeps its place when the legend goes; a long legend (a photo's many
        # classes) is cut at the window's edge instead of widening the window past the screen.
        keep = QtWidgets.QSizePolicy(QtWidgets.QSizePolicy.Ignored,
                                     QtWidgets.QSizePolicy.Preferred)
        keep.setRetainSizeWhenHidden(True)
        self.legend.setSizePolicy(keep)
        self.found = PlatesOverlay(self.plate.view)
        central = QtWidgets.QWidget()
        column = QtWidgets.QVBoxLayout(central)
        column.setContentsMargins(2, 2, 2, 2)
        column.addWidget(self.plate, 1)
        column.addWidget(self.legend)
        column.addWidget(self.letters)
        self.setCentralWidget(central)
        self._build_toolbar()
        self.readout = HoverReadout()
        self.readout_dock = self._dock("Under the cursor", self.readout,
                                       QtCore.Qt.RightDockWidgetArea)
        self.conv1 = Conv1Panel()
        self.blobs = BlobPanel()
        self.surgery = SurgeryPanel()
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.addTab(self.conv1, "conv1 filters")
        self.tabs.addTab(self.surgery, "Surgery")
        self.tabs.addTab(self.blobs, "Blobs")
        self.why = ExplainPanel()
        self.tabs.addTab(self.why, "Why here")
        self.net_dock = self._dock("Inside the net", self.tabs, QtCore.Qt.BottomDockWidgetArea)
        self.resizeDocks([self.readout_dock], [330], QtCore.Qt.Horizontal)
        self.resizeDocks([self.net_dock], [250], QtCore.Qt.Vertical)
        self._build_status_bar()
        # Esc cancels, or goes back to the best class, from any widget that does not need it.
        escape = QtWidgets.QAction("Cancel, or back to the best class", self)
        escape.setShortcut(QtGui.QKeySequence(QtCore.Qt.Key_Escape))
        escape.triggered.connect(self.escape)
        self.addAction(escape)
        self.why_action = QtWidgets.QAction("Why this class here (the hovered cell)", self)
        self.why_action.setShortcut(QtGui.QKeySequence("Shift+E"))     # E alone: class E
        self.addAction(self.why_action)

    def _build_toolbar(self) -> None:
        bar = self.addToolBar("Controls")
        bar.setObjectName("controls")
        bar.setMovable(False)
        self.scale = ScaleControl()
        self.channels = ChannelPicker()
        self.layer_controls = LayerControls()
        self.toolbar = bar
        bar.addWidget(self.scale)
        bar.addSeparator()
        bar.addWidget(QtWidgets.QLabel(" Channel "))
        bar.addWidget(self.channels)
        bar.addSeparator()
        bar.addWidget(self.layer_controls)
        bar.addSeparator()
        self.fine_action = QtWidgets.QAction(f"Fine (stride {fine.FINE_STRIDE})", self)
        self.fine_action.setCheckable(True)
        self.fine_action.setShortcut(QtGui.QKeySequence("Ctrl+F"))
        self.fine_action.setToolTip("After each map, compute a cell at every pixel of the "
                                    "scaled image (filter rarefaction) and show it (Ctrl+F)")
        bar.addAction(self.fine_action)

    def _build_status_bar(self) -> None:
        """The map's summary, then what is busy, how far it is, and Cancel."""
        self.busy = QtWidgets.QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setFixedWidth(110)
        self.busy.setVisible(False)
        self.busy_label = QtWidgets.QLabel()
        self.cancel_button = QtWidgets.QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Stop the computation in progress (Esc)")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(lambda: self.cancel_work())
        self.summary = SummaryLabel()
        self.statusBar().addPermanentWidget(self.summary, 3)
        for widget in (self.busy_label, self.busy, self.cancel_button):
            self.statusBar().addPermanentWidget(widget)

    def _dock(self, title: str, widget: QtWidgets.QWidget,
              area: QtCore.Qt.DockWidgetArea) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetMovable |
                         QtWidgets.QDockWidget.DockWidgetFloatable |
                         QtWidgets.QDockWidget.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    def _connect(self) -> None:
        """Workers to the controller, widgets to the state; the order of the bindings is the
        order a new map is drawn in, and `map_shown` comes last."""
        state, control, events = self.state, self.controller, self.state.events
        for worker in (self.maps, self.slow, self.panels, self.saving):
            worker.done.connect(control.job_done)
            worker.failed.connect(control.job_failed)
        for worker in (self.maps, self.slow, self.saving):
            worker.busy_changed.connect(self._show_busy)
            worker.progress.connect(self._show_progress)
        self.loader.loaded.connect(self._model_loaded)
        self.loader.failed.connect(self._model_failed)
        self.loader.declined.connect(self._model_declined)
        self.found.progressed.connect(
            lambda done, total: self._show_progress(JobKind.PLATES, done / max(1, total)))
        bindings.bind_scale(self.scale, state, control)
        bindings.bind_channels(self.channels, state)
        bindings.bind_layer_controls(self.layer_controls, state)
        bindings.bind_plate(self.plate, self.legend, state)
        bindings.bind_plates(self.found, state, control)
        bindings.bind_letters(self.letters, state)
        bindings.bind_conv1(self.conv1, state, control)
        bindings.bind_blobs(self.blobs, state, control)
        bindings.bind_readout(self.readout, self.plate, state)
        bindings.bind_summary(self.summary, state)
        bindings.bind_surgery(self.surgery, state, control)
        bindings.bind_explain(self.why, self.letters, state, control,
                              lambda: self.tabs.setCurrentWidget(self.why))
        self.why_action.triggered.connect(control.explain_hovered)
        self.scale.editing_done.connect(self.plate.setFocus)
        self.fine_action.toggled.connect(control.set_fine)
        events.model.connect(lambda model: self._title())
        events.image.connect(lambda image: self._title())
        events.fine.connect(self._check_fine)
        events.status.connect(self.statusBar().showMessage)
        events.alert.connect(lambda message: self.show_error(message))
        events.saved.connect(self._saved)
        events.failed.connect(lambda kind, message, retrying: None if retrying else
                              self.map_failed.emit(message))
        events.map.connect(lambda result: self.map_shown.emit())
        events.tiles.connect(lambda tiles: self.panels_shown.emit())
        events.explained.connect(lambda explanation: self.panels_shown.emit())
        events.check_done.connect(lambda check: self.check_shown.emit())

    def _title(self) -> None:
        self.setWindowTitle(f"{self.state.image.label} - {self.state.model.label} - {TITLE}")

    def _check_fine(self, on: bool) -> None:
        """The Fine action shows the state's switch (without asking again)."""
        self.fine_action.blockSignals(True)
        self.fine_action.setChecked(on)
        self.fine_action.blockSignals(False)

    # models from the loader ----------------------------------------------------------------------
    def _model_loaded(self, model: LoadedModel, tag: ModelTag) -> None:
        self.controller.open_model(model)
        if tag.remember:                 # a model opened, not one moved to another engine
            self.show_warnings(model.net.warnings)
            self.files.remember_model(model)
        for note in model.dense.settings.notes:    # e.g. a labels file of the wrong length
            self.show_error(note)

    def _model_failed(self, tag: ModelTag, message: str) -> None:
        self.files.check_engine(self.state.model.dense.engine_name)
        self.statusBar().showMessage(f"kept {self.state.model.label}: {message}", 8000)
        self.show_error(message)

    def _model_declined(self, tag: ModelTag) -> None:
        self.statusBar().showMessage(f"kept {self.state.model.label}: {tag.prototxt.name} was "
                                     "not converted", 8000)

    # busy, cancel, saved -------------------------------------------------------------------------
    def _show_busy(self) -> None:
        cancellable = self.maps.busy_kinds() + self.slow.busy_kinds()
        kinds = cancellable + self.saving.busy_kinds()
        self.busy.setVisible(bool(kinds))
        self.cancel_button.setVisible(bool(cancellable))
        self.busy_label.setText(", ".join(JobKind(kind).doing for kind in kinds))
        self.fractions = {k: f for k, f in self.fractions.items() if k in kinds}
        self._draw_fraction()

    def _show_progress(self, kind: str, fraction: float) -> None:
        """A real fraction in the busy bar for work that reports one (a pass on the blas or
        numpy engine, saving the maps); the bar stays indeterminate for the rest."""
        if fraction < 0:
            self.fractions.pop(kind, None)
        else:   # reports arrive in order, before the worker's "idle" that ends them
            self.fractions[kind] = fraction
        self._draw_fraction()

    def _draw_fraction(self) -> None:
        if self.fractions:
            self.busy.setRange(0, 100)
            self.busy.setValue(round(100 * next(iter(self.fractions.values()))))
        else:
            self.busy.setRange(0, 0)

    def cancel_work(self, background: bool = True) -> list[JobKind]:
        """Stop what is running and go idle at once; returns what was stopped.

        The Cancel button stops everything; Esc (`background=False`) only what the user waits
        for (map, automatic scale, model), not the surgery timing that starts on its own
        (`Controller.cancel`). The engine menu goes back to the model kept.
        """
        stopped = self.controller.cancel(background)
        if JobKind.MODEL in stopped:
            self.files.check_engine(self.state.model.dense.engine_name)
        if stopped:
            self._show_busy()
        return stopped

    def escape(self) -> None:
        """Esc aborts a Shift-drag, else cancels what the user waits for, and when nothing
        runs, goes back to the best class. (Letters and digits are the Channel menu's
        shortcuts.)"""
        if self.found.abort_drag():
            self.statusBar().showMessage("region cancelled", 4000)
        elif not self.cancel_work(background=False):
            self.state.set_channel(None)

    def _saved(self, path: Path) -> None:
        self.settings.set_last_folder("exports", path)
        self.statusBar().showMessage(f"saved {path}", 8000)
        self.saved.emit(str(path))

    # errors and questions (tests replace these) --------------------------------------------------
    def show_error(self, message: str) -> None:
        QtWidgets.QMessageBox.warning(self, TITLE, message)

    def show_warnings(self, warnings: list[str]) -> None:
        """What the reader ignored in the prototxt, in a box that does not block the window."""
        if warnings:
            box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Warning, TITLE,
                                        "\n".join(warnings), parent=self)
            box.setModal(False)
            box.show()

    def confirm(self, question: str) -> bool:
        answer = QtWidgets.QMessageBox.question(self, TITLE, question)
        return answer == QtWidgets.QMessageBox.Yes

    # drag and drop -------------------------------------------------------------------------------
    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.files.open_any(paths)

    # closing and sizing --------------------------------------------------------------------------
    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.settings.save_view_options(self.state.options)
        self.settings.save_window_state(self.saveGeometry(), self.saveState())
        self.settings.sync()
        for worker in (self.maps, self.slow, self.panels, self.saving):
            worker.stop()     # a file being saved is finished first
        self.files.close_browser()
        super().closeEvent(event)

    def restore_window_state(self) -> None:
        """The last session's geometry and docks, unless that no longer fits this screen."""
        geometry, state = self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        area = self.screen().availableGeometry()
        if not area.contains(self.frameGeometry()):
            self.fit_to(area)

    def fit_to(self, area: QtCore.QRect, share: float = 0.92) -> None:
        """Take `share` of the screen's available `area` (1 for screenshots), centred."""
        size = QtCore.QSize(round(area.width() * share), round(area.height() * share))
        self.resize(size)
        self.move(area.center() - QtCore.QPoint(size.width() // 2, size.height() // 2))
        # The docks keep their share (330 and 250 of 1280x800), so their tiles can grow; on a
        # short screen (1280x720) they give the photo more of it.
        short = size.height() < 760
        self.resizeDocks([self.readout_dock], [round(size.width() * (0.22 if short else 0.26))],
                         QtCore.Qt.Horizontal)
        self.resizeDocks([self.net_dock], [round(size.height() * (0.25 if short else 0.31))],
                         QtCore.Qt.Vertical)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        """Letter cards grow with the window (up to 1.6x at 1920x1080 and above); a readout
        squeezed by a smaller window gets its share back when the window grows again."""
        super().resizeEvent(event)
        size = min(event.size().width() / 1280, event.size().height() / 800)
        self.letters.set_size(round(min(max(size, 1.0), 1.6), 1))
        width, dock = event.size().width(), self.readout_dock
        if event.oldSize().width() < width and dock.isVisible() and not dock.isFloating() and \
                dock.width() < READOUT_FLOOR and width >= 3 * READOUT_FLOOR:
            self.resizeDocks([dock], [round(width * 0.22)], QtCore.Qt.Horizontal)
