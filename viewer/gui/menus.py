"""The window's menus and what they do with files: open, recent, drop, export.

The menus act on the state and the controller (`viewer.app`), never on the window's widgets,
and follow the state's events (channel, engine, raw scores) to check their entries. Loading is
done completely before the state is told, so a file that fails leaves the current image or
model on screen, and its error goes to one dialog. File dialogs go through
`ask_open`/`ask_save` so tests can answer them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PyQt5 import QtGui, QtWidgets

from viewer.app import session
from viewer.app.controller import Controller
from viewer.app.state import ViewerState
from viewer.engines import available_engines
from viewer.errors import DatasetError, ViewerError
from viewer.files import paths
from viewer.gui.layers import overlay_picture
from viewer.gui.model_loader import ModelLoader
from viewer.gui.preprocess_dialog import PreprocessDialog
from viewer.gui.settings import Settings
from viewer.maps import export
from viewer.maps.preprocess import write_net_with_settings

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.webp);;All files (*)"
MODEL_FILTER = "Caffe net (*.prototxt);;All files (*)"
WEIGHTS_FILTER = "Caffe weights (*.caffemodel);;All files (*)"
MENU_ROWS = 24     # entries per channel menu: fits a 720-pixel screen in one column
KEYS_HELP = (
    "<b>Keys</b><br>"
    "A-Z, 0-9: show that class channel<br>"
    "Esc: abort a Shift-drag, or cancel the map, scale search, plate search or model load in "
    "progress; when none runs, best class<br>"
    "Cancel button (status bar): also stops the surgery timing<br>"
    "+ / -: scale up / down<br>Ctrl+0: automatic scale<br>Ctrl+R: raw scores<br>"
    "Ctrl+F: fine map (a cell at every pixel, after the coarse one)<br>"
    "Ctrl+O: open image<br>Ctrl+M: open model<br>Ctrl+L: open training data (LMDB)<br>"
    "Ctrl+S: save overlay PNG<br>Ctrl+E: save maps (.npz)<br>Ctrl+Shift+S: save surgered "
    "model<br>Home: fit the plate<br>Return or Esc in the scale box: back to the plate<br>"
    "Shift+E: why the hovered cell says its class (the Why here tab)<br>"
    "F1: this help<br><br>"
    "<b>Mouse</b><br>"
    "Drag the plate: pan<br>Wheel: zoom in and out (Home fits the plate again)<br>"
    "Hover the plate: the cell under the cursor, its window and its class probabilities<br>"
    "Right-click the plate: view menu (zoom, export)<br>"
    "Drag the histogram's bar (right of the plate): levels of the map<br>"
    "Click a letter under the plate: its channel, its box highlighted, and why (Why here)<br>"
    "Click a conv1 filter (bottom): its output over the plate; click again to leave<br>"
    "Click a plate's box (a photo): its reading, and the map of its neighbourhood at its "
    "scale<br>"
    "Shift-drag over the image: find the plates in that region (Esc during the drag aborts "
    "it)<br>"
    "Click a row of the training data's label table: only that label<br><br>"
    "Drop images, .prototxt/.caffemodel files or LMDB folders on the window to open them.")


def recent_name(path: Path) -> str:
    """A recent file's entry: its name and its folder's, so two sample.png are told apart."""
    return f"{path.name}  ({path.parent.name or path.parent})"


def is_lmdb(path: Path) -> bool:
    return path.is_dir() and (path / "data.mdb").is_file()


@dataclass
class WindowParts:
    """What the menus use of the window besides the state and the controller."""

    window: QtWidgets.QMainWindow       # whose menu bar they fill; the dialogs' parent
    settings: Settings
    loader: ModelLoader
    fit_plate: Callable[[], None]
    levels: Callable[[], tuple[float, float]]    # the levels set on the plate's histogram
    fine_action: QtWidgets.QAction
    dock_actions: list[QtWidgets.QAction]


class WindowMenus:
    """Builds the menu bar of `parts.window` and carries out its file commands."""

    def __init__(self, parts: WindowParts, state: ViewerState, controller: Controller) -> None:
        self.parts, self.window, self.settings = parts, parts.window, parts.settings
        self.state, self.controller = state, controller
        self.recent_menus: dict[str, QtWidgets.QMenu] = {}
        self.channel_actions: dict[str | None, QtWidgets.QAction] = {}
        self.engine_actions: dict[str, QtWidgets.QAction] = {}
        self.plate_model_actions: dict[str, QtWidgets.QAction] = {}
        self.browser = None     # the LMDB browser, made when the first LMDB is opened

    # dialogs (tests replace these) ------------------------------------------------------------
    def start_folder(self, kind: str) -> str:
        """Where a file dialog opens: the folder last used for `kind`, else the current
        image's (a first Save lands beside the photo, not in the home folder)."""
        image = self.state.image.path
        fallback = str(image.resolve().parent) if image is not None else None
        return self.settings.last_folder(kind, fallback)

    def ask_open(self, kind: str, caption: str, filters: str) -> Path | None:
        if kind == "datasets":
            path = QtWidgets.QFileDialog.getExistingDirectory(
                self.window, caption, self.start_folder(kind))
        else:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(
                self.window, caption, self.start_folder(kind), filters)
        return Path(path) if path else None

    def ask_save(self, kind: str, caption: str, name: str, filters: str) -> Path | None:
        start = str(Path(self.start_folder(kind)) / name)
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self.window, caption, start, filters)
        return Path(path) if path else None

    # building ---------------------------------------------------------------------------------
    def action(self, menu: QtWidgets.QMenu, text: str, slot, shortcut=None,
               tip: str = "") -> QtWidgets.QAction:
        act = menu.addAction(text)
        act.triggered.connect(lambda checked=False: slot())
        if shortcut is not None:
            keys = shortcut if isinstance(shortcut, (list, tuple)) else [shortcut]
            act.setShortcuts([QtGui.QKeySequence(k) for k in keys])
        act.setStatusTip(tip)
        return act

    def build(self) -> None:
        """The menus, then their checks follow the state (from its next `announce`)."""
        bar = self.window.menuBar()
        self._file_menu(bar.addMenu("&File"))
        self._view_menu(bar.addMenu("&View"))
        self._channel_menu(bar.addMenu("&Channel"))
        model_menu = bar.addMenu("&Model")
        self.action(model_menu, "&Preprocessing...", self.edit_preprocessing, None,
                    "Channel swap, raw scale, mean and input scale, with the input they make")
        self._plate_model_menu(model_menu.addMenu("Plate &model"))
        help_menu = bar.addMenu("&Help")
        self.action(help_menu, "Keys and mouse", lambda: QtWidgets.QMessageBox.information(
            self.window, "Keys and mouse", KEYS_HELP), "F1")
        events = self.state.events
        events.model.connect(self._model_changed)
        events.pick.connect(lambda: self.check_channel(self.state.channel))
        events.options.connect(lambda options: self.raw_action.setChecked(options.raw_scores))

    def _model_changed(self, model: session.LoadedModel) -> None:
        self.fill_channel_menu(model.dense.labels)
        self.check_engine(model.dense.engine_name)
        self.check_plate_model(model.prototxt)

    def _plate_model_menu(self, menu: QtWidgets.QMenu) -> None:
        """The bundled plate nets (models/README.md); a pick opens its surgered twin."""
        group = QtWidgets.QActionGroup(menu)          # one at most: none for another net
        group.setExclusionPolicy(QtWidgets.QActionGroup.ExclusionPolicy.ExclusiveOptional)
        for model in paths.PLATE_MODELS.values():
            act = self.action(menu, model.title, lambda m=model: self.open_plate_model(m.name),
                              None, f"{model.fcn_prototxt.name}: the bundled plate net")
            act.setCheckable(True)
            act.setActionGroup(group)
            act.setEnabled(model.bundled())
            self.plate_model_actions[model.name] = act

    def open_plate_model(self, name: str) -> None:
        """Model > Plate model: load a bundled plate net on the worker, on the current engine
        (the check stays on the model shown until the new one is there)."""
        model = paths.PLATE_MODELS[name]
        self.check_plate_model(self.state.model.prototxt)
        if paths.plate_model_of(self.state.model.prototxt) != model:
            self.load_model(model.fcn_prototxt, model.fcn_weights)

    def check_plate_model(self, prototxt: Path) -> None:
        """Check the bundled plate model being shown, or none for another net."""
        shown = paths.plate_model_of(prototxt)
        for name, act in self.plate_model_actions.items():
            act.setChecked(shown is not None and shown.name == name)

    def edit_preprocessing(self) -> None:
        """Model > Preprocessing: the dialog, then the map with what was chosen."""
        s = self.state
        dialog = PreprocessDialog(s.model.dense.transformer, s.image.pixels, s.scale,
                                  self.window)
        if dialog.exec_() == QtWidgets.QDialog.Accepted:
            self.controller.set_transformer(dialog.transformer())

    def _file_menu(self, menu: QtWidgets.QMenu) -> None:
        K = QtGui.QKeySequence
        self.action(menu, "Open &image...", self.open_image_dialog, K.Open)
        self.action(menu, "Open &model...", self.open_model_dialog, "Ctrl+M",
                    "A .prototxt and its .caffemodel: classifier or fully convolutional")
        self.action(menu, "Open &training data (LMDB)...", self.open_lmdb_dialog, "Ctrl+L")
        for kind, title in (("images", "Recent images"), ("models", "Recent models"),
                            ("datasets", "Recent training data")):
            self.recent_menus[kind] = menu.addMenu(title)
            self.refresh_recent(kind)
        menu.addSeparator()
        self.action(menu, "&Save overlay as PNG...", self.export_overlay, K.Save)
        self.action(menu, "Save maps as .&npz...", self.export_maps, "Ctrl+E")
        surgered = menu.addMenu("Export surgered m&odel")
        self.action(surgered, "&Caffe (.prototxt + .caffemodel)...", self.export_model,
                    "Ctrl+Shift+S")
        self.action(surgered, "&ONNX...", self.export_onnx, None,
                    "One .onnx file for any ONNX runtime; geometry and labels in its metadata")
        menu.addSeparator()
        self.action(menu, "&Quit", self.window.close, K.Quit)

    def _view_menu(self, menu: QtWidgets.QMenu) -> None:
        s, c = self.state, self.controller
        self.action(menu, "Scale &up", lambda: c.step_scale(+1), ["+", "="])
        self.action(menu, "Scale &down", lambda: c.step_scale(-1), "-")
        self.auto_action = self.action(menu, "&Automatic scale", c.request_auto_scale, "Ctrl+0")
        self.raw_action = self.action(menu, "&Raw scores instead of probabilities",
                                      lambda: s.set_raw(not s.options.raw_scores), "Ctrl+R")
        self.raw_action.setCheckable(True)
        self.action(menu, "&Fit the plate", self.parts.fit_plate, "Home")
        menu.addAction(self.parts.fine_action)
        self._engine_menu(menu.addMenu("&Engine"))
        menu.addSeparator()
        for action in self.parts.dock_actions:
            menu.addAction(action)

    def _engine_menu(self, menu: QtWidgets.QMenu) -> None:
        """Every inference engine installed here; the same model is reloaded on the pick."""
        group = QtWidgets.QActionGroup(menu)
        for name in available_engines():
            act = menu.addAction(name)
            act.setCheckable(True)
            act.setActionGroup(group)
            act.triggered.connect(lambda checked=False, n=name: self.switch_engine(n))
            self.engine_actions[name] = act

    def switch_engine(self, name: str) -> None:
        """Rebuild the model on `name` off the GUI thread; a failure re-checks the current one."""
        model = self.state.model
        if name != model.dense.engine_name:
            self.parts.loader.rebuild(model, name)
            self.state.say(f"loading {model.label} on the {name} engine...")

    def check_engine(self, name: str) -> None:
        act = self.engine_actions.get(name)
        if act is not None:
            act.setChecked(True)

    def _channel_menu(self, menu: QtWidgets.QMenu) -> None:
        self.channel_menu = menu
        self.channel_group = QtWidgets.QActionGroup(menu)

    def fill_channel_menu(self, labels: list[str]) -> None:
        """"Best class" (Esc) and one checkable entry per class, in submenus short enough for
        a 720-pixel screen (a long menu spills into a second column). A one-character class
        has its key as shortcut, so it works from any widget that does not take text."""
        menu = self.channel_menu
        for submenu in menu.findChildren(QtWidgets.QMenu):
            submenu.deleteLater()
        menu.clear()
        self.channel_actions = {}
        self._channel_action(menu, None, "&Best class\tEsc")
        menu.addSeparator()
        letters = [label for label in labels if len(label) == 1 and label.isalpha()]
        digits = [label for label in labels if len(label) == 1 and label.isdigit()]
        for title, group in (("&Letters", letters), ("&Digits", digits)):
            if group and len(labels) > MENU_ROWS:
                self._fill_channels(menu.addMenu(f"{title} {group[0]}-{group[-1]}"), group)
        grouped = set(letters + digits) if len(labels) > MENU_ROWS else set()
        self._fill_channels(menu, [label for label in labels if label not in grouped])
        self.check_channel(self.state.channel)

    def _fill_channels(self, menu: QtWidgets.QMenu, labels: list[str]) -> None:
        """`labels` as entries, or as submenus of at most MENU_ROWS entries each."""
        if len(labels) <= MENU_ROWS:
            for label in labels:
                self._channel_action(menu, label, f"{label}\t{label}" if len(label) == 1
                                     else label)
            return
        size = MENU_ROWS
        while -(-len(labels) // size) > MENU_ROWS:
            size *= MENU_ROWS
        for start in range(0, len(labels), size):
            chunk = labels[start:start + size]
            self._fill_channels(menu.addMenu(f"{chunk[0]} ... {chunk[-1]}"), chunk)

    def _channel_action(self, menu: QtWidgets.QMenu, label: str | None,
                        text: str) -> QtWidgets.QAction:
        act = menu.addAction(text)
        act.setCheckable(True)
        act.setActionGroup(self.channel_group)
        if label is not None and len(label) == 1:
            act.setShortcut(QtGui.QKeySequence(label))
        act.triggered.connect(lambda checked=False, l=label: self.state.set_channel(l))
        self.channel_actions[label] = act
        return act

    def check_channel(self, label: str | None) -> None:
        act = self.channel_actions.get(label)
        if act is not None:
            act.setChecked(True)

    # recent files ------------------------------------------------------------------------------
    def remember(self, kind: str, entry: str, path: Path) -> None:
        self.settings.add_recent(kind, entry)
        self.settings.set_last_folder(kind, path)
        self.refresh_recent(kind)

    def refresh_recent(self, kind: str) -> None:
        menu = self.recent_menus[kind]
        menu.clear()
        entries = self.settings.recent(kind)
        for entry in entries:
            shown = " + ".join(recent_name(Path(p)) for p in entry.split("|") if p)
            act = menu.addAction(shown)
            act.setToolTip(entry)
            act.triggered.connect(lambda checked=False, e=entry, k=kind: self.open_recent(k, e))
        menu.setEnabled(bool(entries))

    def open_recent(self, kind: str, entry: str) -> None:
        if kind == "images":
            self.open_image(Path(entry))
        elif kind == "models":
            prototxt, _, weights = entry.partition("|")
            self.open_model(Path(prototxt), Path(weights) if weights else None)
        else:
            self.open_lmdb(Path(entry))

    # opening -----------------------------------------------------------------------------------
    def open_image_dialog(self) -> None:
        path = self.ask_open("images", "Open a plate image", IMAGE_FILTER)
        if path:
            self.open_image(path)

    def open_model_dialog(self) -> None:
        path = self.ask_open("models", "Open a Caffe net (.prototxt)", MODEL_FILTER)
        if path:
            self.open_model(path)

    def open_lmdb_dialog(self) -> None:
        path = self.ask_open("datasets", "Open a Caffe LMDB folder", "")
        if path:
            self.open_lmdb(path)

    def open_image(self, path: Path) -> bool:
        try:
            image = session.read_image(path)
        except ViewerError as err:
            self.state.alert(str(err))
            return False
        self.controller.open_image(image)
        self.remember("images", str(path), path)
        return True

    def open_model(self, prototxt: Path, weights: Path | None = None) -> bool:
        """Start loading a net on the worker (False if the user gave no weights).

        A classifier is made fully convolutional if the user agrees; the state keeps its model
        until the new one is ready, and a failure is a dialog (`MainWindow.loader`).
        """
        weights = weights or session.weights_beside(prototxt) or self.ask_open(
            "models", f"Weights for {prototxt.name} (.caffemodel)", WEIGHTS_FILTER)
        if weights is None:
            return False
        self.load_model(prototxt, weights)
        return True

    def load_model(self, prototxt: Path, weights: Path | None, engine: str | None = None) -> None:
        """Open a model on the worker, on the current engine unless `engine` is given; the
        current model stays until the new one is ready."""
        self.parts.loader.load(prototxt, weights, engine or self.state.model.dense.engine_name)
        self.state.say(f"loading {prototxt.name}...")

    def remember_model(self, model: session.LoadedModel) -> None:
        """A model the user opened (not one moved to another engine), in the recent files."""
        self.remember("models", f"{model.prototxt}|{model.weights or ''}", model.prototxt)

    def ask_choice(self, caption: str, question: str, options: list[str]) -> str | None:
        answer, ok = QtWidgets.QInputDialog.getItem(self.window, caption, question, options, 0,
                                                    False)
        return answer if ok else None

    def open_lmdb(self, path: Path) -> bool:
        """Browse an LMDB; a folder holding LMDBs (what `dataset make --out` writes:
        train_lmdb, test_lmdb) offers them."""
        from viewer.caffe.lmdb_io import open_lmdb
        from viewer.gui.dataset_browser import DatasetBrowser

        inside = sorted(p.name for p in path.iterdir() if is_lmdb(p)) \
            if path.is_dir() and not is_lmdb(path) else []
        if inside:
            pick = inside[0] if len(inside) == 1 else self.ask_choice(
                "Open training data", f"{path.name} holds these LMDBs; open:", inside)
            if pick is None:
                return False
            path = path / pick
        try:
            reader = open_lmdb(path)
        except (DatasetError, ViewerError) as err:
            self.state.alert(str(err))
            return False
        if self.browser is None:
            self.browser = DatasetBrowser(self.state.model.dense.labels)
            self.browser.resize(1100, 620)
        self.browser.open(reader)
        self.browser.show()
        self.browser.raise_()
        self.remember("datasets", str(path), path)
        return True

    def close_browser(self) -> None:
        """The window closes: so does the LMDB browser, its reading stopped first."""
        if self.browser is not None:
            self.browser.shutdown()
            self.browser.close()

    def open_any(self, paths: list[Path]) -> None:
        """Dropped files: a net (.prototxt, or a .caffemodel beside one), an LMDB, an image."""
        for path in paths:
            if is_lmdb(path) or path.name == "data.mdb":
                self.open_lmdb(path if path.is_dir() else path.parent)
            elif path.suffix.lower() in session.MODEL_SUFFIXES:
                self.open_model(path)
            elif path.suffix.lower() in session.WEIGHT_SUFFIXES:
                prototxt = session.prototxt_beside(path)
                if prototxt is None:
                    self.state.alert(f"{path.name}: drop its .prototxt with it, or open it "
                                     "with File > Open model")
                else:
                    self.open_model(prototxt, path)
            else:
                self.open_image(path)

    # export -------------------------------------------------------------------------------------
    def _inputs(self) -> tuple:
        s = self.state
        return tuple(p for p in (s.image.path, s.model.prototxt, s.model.weights) if p)

    def _stem(self) -> str:
        return self.state.image.path.stem if self.state.image.path else "plate"

    def export_overlay(self) -> Path | None:
        s, layer = self.state, self.state.layer
        if layer is None:
            return None
        path = self.ask_save("exports", "Save the overlay as PNG", f"{self._stem()}_overlay.png",
                             "PNG image (*.png)")
        if path is None:
            return None
        levels = self.parts.levels() if layer.rgba is None else layer.levels
        picture = overlay_picture(s.image.pixels, s.fm, layer, s.options.colormap, levels,
                                  s.options.opacity, s.plates, s.chosen_plate)
        return self._saved(lambda: export.save_png(picture, path, self._inputs()), path)

    def export_maps(self) -> Path | None:
        if self.state.fm is None:
            return None
        path = self.ask_save("exports", "Save the maps", f"{self._stem()}_featuremap.npz",
                             "NumPy maps (*.npz)")
        if path is None:
            return None
        fm, inputs = self.state.fm, self._inputs()
        self.controller.save(lambda: export.save_npz(fm, path, inputs), path)
        return path

    def export_model(self) -> Path | None:
        model = self.state.model
        name = f"{model.prototxt.stem}_fullconv.prototxt" if model.classifier is not None and \
            model.dense.classifier is not None else model.prototxt.name
        path = self.ask_save("exports", "Save the fully convolutional model (.prototxt; the "
                             ".caffemodel goes beside it)", name, MODEL_FILTER)
        if path is None:
            return None
        path = path.with_suffix(".prototxt")
        return self._saved(lambda: self._write_model(model, path), path)

    def _write_model(self, model: session.LoadedModel, path: Path) -> None:
        """The net, its weights, and its preprocessing sidecar (as `surgery --out` writes)."""
        write_net_with_settings(model.dense.net, path, path.with_suffix(".caffemodel"),
                                model.dense.settings, self._inputs())

    def export_onnx(self) -> Path | None:
        model = self.state.model
        path = self.ask_save("exports", "Export the surgered model as ONNX",
                             f"{model.prototxt.stem}.onnx", "ONNX model (*.onnx)")
        if path is None:
            return None
        return self._saved(lambda: export.save_onnx(model.dense, path, self._inputs()), path)

    def _saved(self, write, path: Path) -> Path | None:
        try:
            write()
        except (ViewerError, OSError) as err:
            self.state.alert(f"could not save {path}: {err}")
            return None
        self.settings.set_last_folder("exports", path)
        self.state.say(f"saved {path}", 8000)
        return path
