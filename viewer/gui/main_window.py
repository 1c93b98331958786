"""The main window: the plate with its map layer, the controls, the panels, and their wiring.

State lives here in a few fields (model, image, map, channel, filter); every number shown comes
from a core call made by a job on a worker thread. Requests are tagged with a generation that
changes with the image or model, so a late answer to an old request is dropped. Everything slow
(maps, the automatic scale, opening a model, the surgery timing) runs on a worker and can be
cancelled (the Cancel button, or Esc).
"""
from __future__ import annotations

from pathlib import Path

from PyQt5 import QtCore, QtGui, QtWidgets

from viewer.maps import render
from viewer.plates import locate
from viewer.errors import ViewerError
from viewer.maps.featuremap import FeatureMap
from viewer.app import fine, jobs, pictures
from viewer.gui.blob_panel import BlobPanel
from viewer.app.scale import scale_limit_text, scale_range, scale_text
from viewer.gui.controls import ChannelPicker, LayerControls, ScaleControl
from viewer.gui.conv1_panel import Conv1Panel
from viewer.app.layers import MapLayer, filter_name, layer_for
from viewer.gui.letter_strip import LetterStrip
from viewer.gui.menus import build_menus
from viewer.gui.model_loader import ModelLoader
from viewer.gui.plate_view import PlateView
from viewer.gui.plates_overlay import PlatesOverlay
from viewer.gui.readout import HoverReadout
from viewer.app.session import LoadedImage, LoadedModel
from viewer.gui.settings import Settings, ViewOptions
from viewer.gui.summary import SummaryLabel
from viewer.gui.surgery_panel import SurgeryPanel
from viewer.gui.worker import LatestWorker
from viewer.gui.preprocess_dialog import PreprocessDialog
from viewer.maps.labels import is_plate_model
from viewer.maps.preprocess import Transformer

TITLE = "Net Surgery Viewer"
# What each kind of job is called in the busy indicator and in "cancelled: ...".
WORK = {"map": "computing the map", "auto": "choosing the scale", "model": "loading the model",
        "surgery": "timing the surgery", "blob": "computing the blob",
        "fine": "computing the fine map", "plates": "finding plates", "save": "saving"}


def legend_html(entries: list) -> str:
    """Each character on a swatch of its colour, in black or white, whichever reads."""
    if not entries:
        return "Colours: no character is sure anywhere on this map"
    swatches = []
    for label, (r, g, b) in entries:
        ink = "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#fff"
        swatches.append(f"<span style='background-color:#{r:02x}{g:02x}{b:02x}; color:{ink}'>"
                        f"&nbsp;<b>{label}</b>&nbsp;</span>")
    return "Colours: " + " ".join(swatches)


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
        self.auto_check = auto_check  # time the surgery after each new model/image
        self.settings = settings
        self.options: ViewOptions = settings.view_options()
        self.model, self.image = model, image
        self.fm: FeatureMap | None = None
        self.result: jobs.MapResult | None = None
        self.layer: MapLayer | None = None
        self.channel: str | None = channel
        self.filter: int | None = None
        self.generation = 0
        self.checked_generation = -1
        self.auto_shown = False   # the map on screen is at the scale auto_read chose
        self.shown_tag: jobs.MapTag | None = None   # the request the map on screen answers
        self.coarse: jobs.MapResult | None = None   # the last map at the net's own stride
        self.fine_on = False                        # follow each coarse map with a fine one
        self.maps = LatestWorker("maps")
        self.slow = LatestWorker("surgery")
        self.panels = LatestWorker("panels")   # conv1 tiles, drawn after the heatmap is shown
        self.saving = LatestWorker("saving")   # files written in the background (maps: 64 MB)
        self.fractions: dict[str, float] = {}  # how far each busy kind of work is, when known
        self.loader = ModelLoader(self.maps, lambda question: self.confirm(question))
        self.browser = None
        self._build()
        self.files = build_menus(self)
        self._connect()
        self.setAcceptDrops(True)
        self.layer_controls.set_values(self.options.opacity, self.options.colormap,
                                       self.options.raw_scores)
        self._apply_model(model)
        self._apply_image(image)
        self.scale.set_scale(scale or 1.0)
        if scale:
            self.request_map()
        else:
            self.request_auto_scale()

    # building -------------------------------------------------------------------------------
    def _build(self) -> None:
        self.setWindowTitle(TITLE)
        self.plate = PlateView()
        # Drops go to the window, which knows images, nets and LMDBs (see dropEvent).
        self.plate.setAcceptDrops(False)
        self.plate.viewport().setAcceptDrops(False)
        self.letters = LetterStrip()
        self.legend = QtWidgets.QLabel()
        self.legend.setToolTip("The colours of the best-character picture: each character the "
                               "net is sure of somewhere on this map, left to right")
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
        self.net_dock = self._dock("Inside the net", self.tabs, QtCore.Qt.BottomDockWidgetArea)
        self.resizeDocks([self.readout_dock], [330], QtCore.Qt.Horizontal)
        self.resizeDocks([self.net_dock], [250], QtCore.Qt.Vertical)
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
        # Esc cancels, or goes back to the best class, from any widget that does not need it.
        escape = QtWidgets.QAction("Cancel, or back to the best class", self)
        escape.setShortcut(QtGui.QKeySequence(QtCore.Qt.Key_Escape))
        escape.triggered.connect(self.escape)
        self.addAction(escape)

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
        self.maps.done.connect(self._job_done)
        self.maps.failed.connect(self._job_failed)
        self.slow.done.connect(self._job_done)
        self.slow.failed.connect(self._job_failed)
        for worker in (self.maps, self.slow, self.saving):
            worker.busy_changed.connect(self._show_busy)
            worker.progress.connect(self._show_progress)
        self.saving.done.connect(lambda kind, path, _result: self._saved(path))
        self.saving.failed.connect(lambda kind, path, message: self.show_error(
            f"could not save {path}: {message}"))
        self.panels.done.connect(self._conv1_drawn)
        self.loader.loaded.connect(self._model_loaded)
        self.loader.failed.connect(self._model_failed)
        self.loader.declined.connect(self._model_declined)
        self.scale.scale_changed.connect(lambda _: self.request_map())
        self.scale.auto_requested.connect(self.request_auto_scale)
        self.scale.editing_done.connect(self.plate.setFocus)
        self.channels.channel_changed.connect(self.set_channel)
        self.layer_controls.opacity_changed.connect(self._set_opacity)
        self.layer_controls.colormap_changed.connect(self._set_colormap)
        self.layer_controls.raw_changed.connect(self._set_raw)
        self.plate.hovered.connect(self.hover_at)
        self.plate.left.connect(self._hover_left)
        self.letters.letter_clicked.connect(self.select_letter)
        self.found.plate_clicked.connect(self.select_plate)
        self.found.region_drawn.connect(self.request_plates)
        self.found.progressed.connect(
            lambda done, total: self._show_progress("plates", done / max(1, total)))
        self.conv1.filter_clicked.connect(self.select_filter)
        self.conv1.height_wanted.connect(self._draw_conv1)
        self.blobs.blob_changed.connect(self._blob_changed)
        self.surgery.check_requested.connect(self.request_check)
        self.fine_action.toggled.connect(self.set_fine)
        self.scale.slider.sliderReleased.connect(self.request_fine)

    # model and image -------------------------------------------------------------------------
    def load_model(self, prototxt: Path, weights: Path | None, engine: str | None = None) -> None:
        """Open a model on the worker; the current one stays until the new one is ready. A
        plate search on that worker gives way (its plates are the old model's)."""
        self.maps.cancel(("plates",))
        self.loader.load(prototxt, weights, engine or self.model.dense.engine_name)
        self.statusBar().showMessage(f"loading {prototxt.name}...")

    def switch_engine(self, engine: str) -> None:
        """The same net on another engine, built on the worker (a plate search gives way)."""
        self.maps.cancel(("plates",))
        self.loader.rebuild(self.model, engine)
        self.statusBar().showMessage(f"loading {self.model.label} on the {engine} engine...")

    def set_model(self, model: LoadedModel) -> None:
        """Swap in a loaded model and recompute at the current scale."""
        self._apply_model(model)
        self.request_map()

    def set_image(self, image: LoadedImage) -> None:
        """Show a newly opened image, at the scale its letters read best."""
        self._apply_image(image)
        self.request_auto_scale()

    def _model_loaded(self, model: LoadedModel, tag: jobs.ModelTag) -> None:
        self.set_model(model)
        if tag.remember:                 # a model opened, not one moved to another engine
            self.show_warnings(model.net.warnings)
        self.files.model_opened(model, tag.remember)
        for note in model.dense.settings.notes:    # e.g. a labels file of the wrong length
            self.show_error(note)

    def edit_preprocessing(self) -> None:
        """Model > Preprocessing: the dialog, then the map with what was chosen."""
        dialog = PreprocessDialog(self.model.dense.transformer, self.image.pixels,
                                  self.scale.value(), self)
        if dialog.exec_() == QtWidgets.QDialog.Accepted:
            self.set_transformer(dialog.transformer())

    def set_transformer(self, transformer: Transformer) -> None:
        """Map with new preprocessing: a new generation, so a map made before is dropped."""
        dense = self.model.dense
        dense.settings = dense.settings.with_transformer(transformer)
        self.generation += 1
        self.request_map()
        self.statusBar().showMessage(f"preprocessing: {transformer.describe()}", 8000)

    def _model_failed(self, tag: jobs.ModelTag, message: str) -> None:
        self.files.check_engine(self.model.dense.engine_name)
        self.statusBar().showMessage(f"kept {self.model.label}: {message}", 8000)
        self.show_error(message)

    def _model_declined(self, tag: jobs.ModelTag) -> None:
        self.statusBar().showMessage(f"kept {self.model.label}: {tag.prototxt.name} was not "
                                     "converted", 8000)

    def _apply_model(self, model: LoadedModel) -> None:
        self.model = model
        self.generation += 1
        dense = model.dense
        self.channels.set_labels(dense.labels)
        self.channels.set_channel(self.channel if self.channel in dense.labels else None,
                                  emit=False)
        self.channel = self.channels.channel()
        self.filter = None
        self.conv1.select(None)
        self.blobs.set_blobs(dense.engine.blob_names, preferred=dense.score_blob)
        self.surgery.set_model(model)
        self.surgery.set_fine(fine.surgery_rows(dense))
        # The plate parts (letter strip, automatic scale) only for a model with plate labels.
        self.letters.setVisible(is_plate_model(dense.labels))
        self.scale.auto.setEnabled(jobs.plate_reader(dense.labels) is not None)
        self._update_range()
        self._title()

    def _apply_image(self, image: LoadedImage) -> None:
        self.image = image
        self.generation += 1
        self.plate.clear_map()
        self.plate.set_plate(image.pixels)
        # nothing of the last image's map is drawn
        self.fm = self.result = self.layer = self.coarse = None
        self.readout.clear()
        # Until this image's map is drawn, no panel shows the last image's.
        self.blobs.show_blob(self.blobs.blob(), None)
        self.letters.reset()
        self.legend.setVisible(False)
        self.conv1.clear()
        self._update_range()
        self._title()

    def _extra_blobs(self) -> tuple[str, ...]:
        """The blob picked in the Blobs tab, which each pass also returns."""
        blob = self.blobs.blob()
        return (blob,) if blob and blob != self.model.dense.engine.input_name else ()

    def _update_range(self) -> None:
        """Scales from one window of the net to the largest pass that fits in memory."""
        if getattr(self, "image", None) is None:
            return
        dense, shape = self.model.dense, self.image.pixels.shape[:2]
        limit = dense.max_scale(shape, self._extra_blobs())
        self.scale.set_range(scale_range(dense.min_scale(shape), limit, scale_limit_text(
            limit, shape, [engine.name for engine in dense.memory_engines()])))

    def _blob_changed(self, blob: str) -> None:
        """The picked blob of the map on screen, computed at that map's exact scale; the map
        itself stays (looking at a panel never changes the map). Later maps carry it."""
        self._update_range()    # a large blob lowers the largest scale that fits
        fm = self.fm
        if fm is None:
            return
        if blob in fm.blobs or blob == self.model.dense.engine.input_name:
            self._show_blob(fm)
            return
        self.blobs.show_blob(blob, None)
        dense, pixels = self.model.dense, self.image.pixels
        self.maps.submit("blob", lambda: dense.run(pixels, fm.scale, extra_blobs=(blob,)).blobs,
                         fm)

    def _show_blob(self, fm: FeatureMap) -> None:
        """The Blobs tab's pick, from `fm` (the input is made again, it is cheap)."""
        blob, dense = self.blobs.blob(), self.model.dense
        values = dense.prepare(self.image.pixels, fm.scale)[0] \
            if blob == dense.engine.input_name else fm.blobs.get(blob)
        classes = values is not None and values.shape == fm.probs.shape   # scores, probs
        self.blobs.show_blob(blob, values, fm.labels if classes else None)

    def _title(self) -> None:
        if getattr(self, "image", None) is not None:
            self.setWindowTitle(f"{self.image.label} - {self.model.label} - {TITLE}")

    # requests to the workers -------------------------------------------------------------------
    def request_map(self) -> None:
        """Ask for the map at the current scale; a newer request replaces a waiting one, and
        a scale chosen by hand replaces a search for the automatic one."""
        scale, dense, pixels = self.scale.value(), self.model.dense, self.image.pixels
        extra = self._extra_blobs()
        self.maps.cancel(("auto", "blob", "fine"))
        self.maps.submit("map", lambda: jobs.compute_map(dense, pixels, scale, extra),
                         jobs.MapTag(self.generation, scale))
        self.statusBar().showMessage(f"computing the dense map at scale {scale:g}...")

    def request_auto_scale(self) -> None:
        """The map at the scale where the letters read best, searched on the worker (a sweep
        of passes, each a chance to cancel). Without a plate reader, or for a model that reads
        no plates: a map at `jobs.opening_scale`."""
        if jobs.plate_reader(self.model.dense.labels) is None:
            self.scale.set_scale(jobs.opening_scale(self.model.dense, self.image.pixels.shape))
            self.request_map()
            return
        dense, pixels, stop = self.model.dense, self.image.pixels, self.maps.should_stop
        extra = self._extra_blobs()
        self.maps.cancel(("map", "blob", "fine", "plates"))
        self.maps.submit("auto", lambda: jobs.auto_map(dense, pixels, stop, extra),
                         jobs.MapTag(self.generation, self.scale.value()))
        self.statusBar().showMessage("looking for the scale at which the letters fit the net...")

    def request_plates(self, x: int = 0, y: int = 0, w: int = 0, h: int = 0) -> None:
        """Find the plates in a region of the image (Shift-drag; none: the whole image) on
        the worker: a pyramid of passes with progress, each a chance to cancel. A region
        reaching outside the image is cut to it."""
        height, width = self.image.pixels.shape[:2]
        w, h = (w, h) if w and h else (width, height)
        x0, y0 = max(0, x), max(0, y)
        region = (x0, y0, min(width, x + w) - x0, min(height, y + h) - y0)
        if min(region[2:]) < 1:
            return
        dense, pixels, stop = self.model.dense, self.image.pixels, self.maps.should_stop
        progress, asked = self.found.progressed.emit, region != (0, 0, width, height)
        self.maps.submit("plates", lambda: jobs.find_plates(dense, pixels, region, stop,
                                                            progress),
                         jobs.PlatesTag(self.generation, asked))
        self.statusBar().showMessage("looking for plates: rows of letters at several scales...")

    def _plates_found(self, tag: jobs.PlatesTag, photo: locate.PhotoReading) -> None:
        """Draw the found plates. The best one is chosen when the user asked for a region, or
        when it is a plate in a photo, not the image itself (a crop keeps the map it has)."""
        self.found.set_plates(photo.plates)
        best = photo.best
        if best is None:
            self.statusBar().showMessage("no plate found", 8000)
            return
        height, width = self.image.pixels.shape[:2]
        crop = locate.crop_around(best.box, (height, width)) == (0, 0, width, height)
        if tag.region or not crop:
            self.select_plate(0, zoom=tag.region)
        else:
            self.found.choose(0)

    def select_plate(self, index: int, zoom: bool = True) -> None:
        """A found plate: zoom to it, and show the map at its scale with its reading."""
        self.found.choose(index)
        if zoom:
            self.found.zoom_to(index)
        self.scale.set_scale(self.found.plates[index].scale)
        self.request_map()

    def _plate_reading(self, result: jobs.MapResult) -> jobs.MapResult:
        """A map at the chosen plate's scale reads as that plate: the Reads strip follows the
        plate, not the whole photo read as one."""
        chosen = self.found.chosen
        if chosen is not None and self.found.plates[chosen].scale == result.fm.scale:
            result.reading = self.found.plates[chosen].reading
        return result


    def request_check(self) -> None:
        """Equivalence and dense-versus-windows timing at the current scale, on the slow worker."""
        model, pixels, scale = self.model, self.image.pixels, self.scale.value()
        self.checked_generation = self.generation
        self.surgery.set_measuring()
        stop = self.slow.should_stop
        self.slow.submit("surgery", lambda: jobs.check_surgery(model, pixels, scale, stop),
                         jobs.MapTag(self.generation, scale))

    def _job_done(self, kind: str, tag: jobs.MapTag, result) -> None:
        if kind == "surgery":
            self.surgery.set_check(result)
            self.check_shown.emit()
        elif kind == "plates":
            if tag.generation == self.generation:
                self._plates_found(tag, result)
        elif kind == "blob":
            if tag is self.fm:
                self.fm.blobs.update(result)
                self._show_blob(self.fm)
        elif kind == "fine":
            if self.fine_on and tag.generation == self.generation and self.coarse is not None \
                    and tag.scale == self.coarse.fm.scale:
                self._show_result(result)
        elif kind not in ("map", "auto") or tag.generation != self.generation:
            return
        else:
            self.auto_shown, self.shown_tag = kind == "auto", tag
            if self.auto_shown:
                self.scale.set_scale(result.fm.scale)
            self.coarse = result
            self._show_result(self._plate_reading(result))
            self.request_fine()
            if self.auto_shown:
                self.request_plates()

    def _job_failed(self, kind: str, tag: jobs.MapTag, message: str) -> None:
        if kind == "surgery":
            self.surgery.set_failed(message)
        elif kind == "fine":    # the coarse map stays
            self.statusBar().showMessage(f"no fine map: {message}", 8000)
        elif kind == "plates" and tag.generation == self.generation:
            self.statusBar().showMessage(f"error: {message}")
            self.map_failed.emit(message)
        elif kind in ("map", "auto") and tag.generation == self.generation:
            self.statusBar().showMessage(f"error: {message}")
            self.letters.show_message(f"<span style='color:#c22'>{message}</span>")
            if kind == "auto" and self.fm is None:   # nothing on screen: map at this scale
                self.request_map()
            else:
                self.map_failed.emit(message)

    def set_fine(self, on: bool) -> None:
        """Follow each coarse map with the fine one (on), or go back to the coarse map (off)."""
        self.fine_on = on
        if self.fine_action.isChecked() != on:
            self.fine_action.setChecked(on)
        if on:
            self.request_fine()
            return
        self.maps.cancel(("fine",))
        self._show_busy()
        if fine.is_fine(self.result) and self.coarse is not None:
            self._show_result(self.coarse)

    def request_fine(self) -> None:
        """The fine map of the coarse map on screen, unless the scale is being dragged (the
        release asks again) or it is already shown."""
        coarse = self.coarse
        if not self.fine_on or coarse is None or fine.is_fine(self.result) or \
                fine.is_fine(coarse) or self.scale.slider.isSliderDown():
            return
        dense, pixels, extra = self.model.dense, self.image.pixels, self._extra_blobs()
        self.maps.submit("fine", lambda: fine.fine_map(dense, pixels, coarse.fm.scale, extra,
                                                       coarse),
                         jobs.MapTag(self.generation, coarse.fm.scale))

    def _show_busy(self) -> None:
        cancellable = self.maps.busy_kinds() + self.slow.busy_kinds()
        kinds = cancellable + self.saving.busy_kinds()
        self.busy.setVisible(bool(kinds))
        self.cancel_button.setVisible(bool(cancellable))
        self.busy_label.setText(", ".join(WORK.get(kind, kind) for kind in kinds))
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

    def save_in_background(self, write, path: Path) -> None:
        """Write a file on the saving worker (the maps of a 12 MP photo take seconds), with
        its progress in the status bar; `saved` or a dialog tells how it ended."""
        self.saving.submit("save", write, path)
        self.statusBar().showMessage(f"saving {path}...")

    def _saved(self, path: Path) -> None:
        self.settings.set_last_folder("exports", path)
        self.statusBar().showMessage(f"saved {path}", 8000)
        self.saved.emit(str(path))

    def cancel_work(self, background: bool = True) -> list[str]:
        """Stop what is running and go idle at once; returns what was stopped.

        The Cancel button stops everything; Esc (`background=False`) only what the user waits
        for (map, automatic scale, model), not the surgery timing that starts on its own. A
        pass already inside an engine cannot be interrupted: its result is dropped when it
        returns. The controls go back to the map on screen.
        """
        stopped = self.maps.cancel() + (self.slow.cancel() if background else [])
        if not stopped:
            return []
        if "surgery" in stopped:
            self.surgery.set_cancelled()
        if "model" in stopped:
            self.files.check_engine(self.model.dense.engine_name)
        if self.fm is not None:
            self.scale.set_scale(self.fm.scale)
        self._show_busy()
        self.statusBar().showMessage("cancelled: " + ", ".join(WORK.get(k, k) for k in stopped),
                                     8000)
        return stopped

    # drawing ----------------------------------------------------------------------------------
    def _show_result(self, result: jobs.MapResult) -> None:
        self.result, self.fm = result, result.fm
        self.draw_layer()
        if result.reading is not None:
            self.letters.set_reading(result.reading)
        else:
            self.letters.show_message(result.note)
        self._draw_conv1()
        self._show_blob(self.fm)
        self._refresh_hover()
        self._status()
        self.map_shown.emit()
        if self.auto_check and self.checked_generation != self.generation:
            self.request_check()

    def _draw_conv1(self, height: int | None = None) -> None:
        """The conv1 tiles of the map on screen, on the panels worker, as tall as the panel
        has room for (`height` when it asked after a resize)."""
        dense, fm = self.model.dense, self.fm
        if fm is None or fm.conv1 is None:
            return
        kernels = dense.engine.params[dense.first_conv][0]
        self.conv1.kernel_shape = kernels.shape[2:]
        height = height or self.conv1.best_height(fm.conv1.shape)
        self.panels.submit("conv1", lambda: pictures.conv1_pictures(kernels, fm.conv1, height),
                           (fm, dense.first_conv, kernels))

    def _conv1_drawn(self, kind: str, tag: tuple, pictures: list) -> None:
        """The conv1 tiles of the map on screen (a late answer for an older map is dropped)."""
        fm, blob, kernels = tag
        if fm is self.fm:
            self.conv1.set_filters(blob, kernels, fm.conv1, pictures)
            self.conv1.select(self.filter)
            self.panels_shown.emit()

    def draw_layer(self) -> None:
        """Put the chosen channel, best class or filter over the plate, placed by geometry."""
        if self.fm is None:
            return
        self.layer = layer_for(self.fm, self.model.dense, self.channel, self.filter,
                               self.options.raw_scores)
        if self.layer.rgba is not None:
            self.plate.show_rgba(self.layer.rgba, self.layer.rect)
        else:
            self.plate.show_values(self.layer.values, self.layer.rect, self.layer.mode,
                                   self.layer.levels)
        self.plate.set_colormap(self.options.colormap)
        self.plate.set_opacity(self.options.opacity)
        self.legend.setVisible(self.layer.mode == "best")
        if self.layer.mode == "best":
            self.legend.setText(legend_html(render.best_class_legend(self.fm)))

    def _status(self) -> None:
        """What is drawn, with the geometry of that very layer (conv1 has its own)."""
        fm, layer = self.fm, self.layer
        g = layer.geometry
        h, w = (layer.values if layer.values is not None else layer.rgba).shape[:2]
        how = ", chosen automatically" if self.auto_shown else ""
        why = f" | {fm.engine_note}" if fm.engine_note else ""
        padded = f" (padded field {g.padded_field[0]} px)" if g.padded_field else ""
        self.summary.set_summary(
            f"{layer.title} | {h}x{w} cells, stride {g.stride[0]}, window "
            f"{g.receptive_field[0]} px of the scaled image{padded} | "
            f"scale {scale_text(fm.scale)}{how} | {fm.forward_ms:.0f} ms on {fm.engine}{why}")

    # picking what to show ------------------------------------------------------------------------
    def set_channel(self, label: str | None) -> None:
        """Show a class channel (None: the best class); this also leaves any filter overlay."""
        self.channel = label
        self.filter = None
        self.conv1.select(None)
        self.channels.set_channel(label, emit=False)
        self.files.check_channel(label)
        self.plate.set_highlight(None)
        self.letters.select(None)
        self.draw_layer()
        if self.fm is not None:
            self._status()

    def select_letter(self, index: int) -> None:
        """A letter of the strip: its channel over the plate, its box highlighted."""
        letter = self.result.reading.letters[index]
        self.set_channel(letter.label)
        self.plate.set_highlight(letter.box)
        self.letters.select(index)

    def select_filter(self, index: int) -> None:
        """Overlay conv1 filter `index` (or go back to the class channel with -1)."""
        self.filter = None if index < 0 else index
        self.conv1.select(self.filter)
        if self.filter is None:
            self.channels.set_channel(self.channel, emit=False)
        else:
            self.channels.show_filter(filter_name(self.model.dense, self.filter))
        self.draw_layer()
        if self.fm is not None:
            self._status()

    def escape(self) -> None:
        """Esc cancels what the user waits for, and when nothing runs, goes back to the best
        class. (Letters and digits are the Channel menu's shortcuts.)"""
        if not self.cancel_work(background=False):
            self.set_channel(None)

    # layer options ------------------------------------------------------------------------------
    def _set_opacity(self, opacity: float) -> None:
        self.options.opacity = opacity
        self.plate.set_opacity(opacity)

    def _set_colormap(self, name: str) -> None:
        self.options.colormap = name
        self.plate.set_colormap(name)

    def _set_raw(self, raw: bool) -> None:
        self.options.raw_scores = raw
        self.files.raw_action.setChecked(raw)
        self.draw_layer()

    # hover --------------------------------------------------------------------------------------
    def hover_at(self, x: float, y: float) -> None:
        """Readout and window rectangle for the cell whose block holds image point (x, y)."""
        if self.fm is not None:
            self.hover_cell(*self.fm.geometry.cell_at(x, y))

    def hover_cell(self, i: int, j: int) -> None:
        _, h, w = self.fm.probs.shape
        if not (0 <= i < h and 0 <= j < w):
            self._hover_left()
            return
        self.readout.show_cell(self.fm, i, j)
        self.plate.set_window(self.fm.geometry.cell_window(i, j))

    def hover_example(self) -> None:
        """Show the readout of the first read letter, or of the plate's centre (screenshots)."""
        letters = getattr(self.result.reading, "letters", None) if self.result else None
        if letters:     # by its box: a found plate's letters count cells in its own map
            x, y, w, h = letters[0].box
            self.hover_at(x + w / 2, y + h / 2)
        else:
            h, w = self.image.pixels.shape[:2]
            self.hover_at(w / 2, h / 2)

    def _hover_left(self) -> None:
        self.readout.clear()
        self.plate.set_window(None)

    def _refresh_hover(self) -> None:
        cell = self.readout.cell
        _, h, w = self.fm.probs.shape
        if cell is not None and cell[0] < h and cell[1] < w:
            self.readout.show_cell(self.fm, *cell)
            self.plate.set_window(self.fm.geometry.cell_window(*cell))
        else:
            self._hover_left()

    # errors and questions (tests replace these two) -----------------------------------------------
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

    # drag and drop -----------------------------------------------------------------------------
    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.files.open_any(paths)

    # closing ------------------------------------------------------------------------------------
    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.settings.save_view_options(self.options)
        self.settings.save_window_state(self.saveGeometry(), self.saveState())
        self.settings.sync()
        for worker in (self.maps, self.slow, self.panels, self.saving):
            worker.stop()     # a file being saved is finished first
        if self.browser is not None:
            self.browser.shutdown()
            self.browser.close()
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
        # The docks keep their share (330 and 250 of 1280x800), so their tiles can grow.
        self.resizeDocks([self.readout_dock], [round(size.width() * 0.26)], QtCore.Qt.Horizontal)
        self.resizeDocks([self.net_dock], [round(size.height() * 0.31)], QtCore.Qt.Vertical)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        """Letter cards grow with the window (up to 1.6x at 1920x1080 and above)."""
        super().resizeEvent(event)
        size = min(event.size().width() / 1280, event.size().height() / 800)
        self.letters.set_size(round(min(max(size, 1.0), 1.6), 1))
