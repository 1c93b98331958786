"""The small controls above the plate: scale, class channel, and how the map layer is drawn.

Each control shows what the state holds and reports what the user chose; the controller
decides what to compute.
"""
from __future__ import annotations

from PyQt5 import QtCore, QtWidgets

from viewer.app.scale import SCALE_DECIMALS, SCALE_MAX, SCALE_MIN, SCALE_STEP, ScaleRange

BEST = "best class"
FILTER_ENTRY = "\0filter"   # the data of the Channel box's entry for a conv1 filter
COLORMAPS = ("inferno", "viridis", "magma", "plasma", "turbo", "cividis")
SCALE_TIP = ("Input scale: the plate is resized by this factor before the dense pass (keys + and "
             "-; Return or Esc hands the keys back to the plate)")


class ScaleControl(QtWidgets.QWidget):
    """Slider and spin box for the input scale (kept in step), plus the "Auto" button.

    The control shows the state's exact scale (the automatic one is 0.25478...), not the spin
    box's rounding of it, within the state's `ScaleRange`; what the user picks goes out as
    `scale_changed`. `editing_done` fires on Return or Esc in the spin box: the window hands
    the keys back to the plate.
    """

    scale_changed = QtCore.pyqtSignal(float)
    auto_requested = QtCore.pyqtSignal()
    editing_done = QtCore.pyqtSignal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Horizontal)
        self.slider.setRange(round(SCALE_MIN * 100), round(SCALE_MAX * 100))
        self.slider.setMinimumWidth(160)
        self.spin = QtWidgets.QDoubleSpinBox()
        self.spin.setRange(SCALE_MIN, SCALE_MAX)
        self.spin.setSingleStep(SCALE_STEP)
        self.spin.setDecimals(SCALE_DECIMALS)
        self.spin.setKeyboardTracking(False)
        self.spin.installEventFilter(self)
        self.exact = 1.0
        self.bounds = ScaleRange()
        self.auto = QtWidgets.QPushButton("Auto")
        self.auto.setToolTip("Pick the scale at which the letters best fit the net's window "
                             "(Ctrl+0)")
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QtWidgets.QLabel("Scale"))
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.spin)
        layout.addWidget(self.auto)
        self.slider.valueChanged.connect(lambda v: self._changed(v / 100.0))
        self.spin.valueChanged.connect(self._changed)
        self.auto.clicked.connect(self.auto_requested)
        self.set_range(self.bounds)
        self.set_scale(1.0)

    def value(self) -> float:
        return self.exact

    def set_scale(self, scale: float, emit: bool = False) -> None:
        """Move both widgets to `scale` (clamped to the range shown), kept exact."""
        self.exact = self.bounds.clamp(scale)
        for widget, value in ((self.slider, round(self.exact * 100)), (self.spin, self.exact)):
            widget.blockSignals(True)
            widget.setValue(value)
            widget.blockSignals(False)
        if emit:
            self.scale_changed.emit(self.value())

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:
        """Return applies the typed scale, Esc drops it; both end the editing (Esc is the
        spin box's here, not the window's shortcut)."""
        keys = (QtCore.Qt.Key_Return, QtCore.Qt.Key_Enter, QtCore.Qt.Key_Escape)
        if watched is not self.spin or event.type() not in (
                QtCore.QEvent.KeyPress, QtCore.QEvent.ShortcutOverride) or event.key() not in keys:
            return super().eventFilter(watched, event)
        if event.type() == QtCore.QEvent.KeyPress:
            if event.key() == QtCore.Qt.Key_Escape:
                self.set_scale(self.exact)
            else:
                self.spin.interpretText()
            self.editing_done.emit()
        event.accept()
        return True

    def set_range(self, bounds: ScaleRange) -> None:
        """Show the scales the state allows (`viewer.app.scale.scale_range`); the reason for
        a cap below SCALE_MAX goes in the tooltip."""
        self.bounds = bounds
        for widget, limits in ((self.spin, (bounds.low, bounds.high)),
                               (self.slider, (round(bounds.low * 100), round(bounds.high * 100)))):
            widget.blockSignals(True)   # a clamped value is the caller's to recompute
            widget.setRange(*limits)
            widget.blockSignals(False)
        self.exact = bounds.clamp(self.exact)
        tip = SCALE_TIP + (f"<br><br>{bounds.reason}" if bounds.reason else "")
        for widget in (self.slider, self.spin):
            widget.setToolTip(tip)

    def _changed(self, scale: float) -> None:
        self.set_scale(round(scale, SCALE_DECIMALS))
        self.scale_changed.emit(self.value())


class ChannelPicker(QtWidgets.QComboBox):
    """"best class" followed by every class label of the model (36 letters, background... or
    1000 ImageNet classes), searchable: typing part of a name ("tabby") lists the classes
    that contain it ("tabby, tabby cat")."""

    channel_changed = QtCore.pyqtSignal(object)   # a label, or None for the best class

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setToolTip("Class channel shown over the plate; type part of a class name to "
                        "find it")
        self.setMaxVisibleItems(20)
        self.setEditable(True)
        self.setInsertPolicy(QtWidgets.QComboBox.NoInsert)
        # Long class names must not widen the toolbar: the box shows about 18 characters.
        self.setSizeAdjustPolicy(QtWidgets.QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(18)
        search = self.completer()
        search.setFilterMode(QtCore.Qt.MatchContains)
        search.setCaseSensitivity(QtCore.Qt.CaseInsensitive)
        search.setCompletionMode(QtWidgets.QCompleter.PopupCompletion)
        self.currentIndexChanged.connect(lambda _: self.channel_changed.emit(self.channel()))

    def set_labels(self, labels: list[str]) -> None:
        self.blockSignals(True)
        current = self.channel()
        self.clear()
        self.addItem(BEST, None)
        for label in labels:
            self.addItem(label, label)
        self.set_channel(current if current in labels else None, emit=False)
        self.blockSignals(False)

    def channel(self) -> str | None:
        data = self.currentData()
        return None if data == FILTER_ENTRY else data

    def set_channel(self, label: str | None, emit: bool = True) -> None:
        self.blockSignals(True)
        self.show_filter(None)
        self.blockSignals(not emit)
        self.setCurrentIndex(max(0, self.findData(label)) if label is not None else 0)
        self.blockSignals(False)

    def show_filter(self, name: str | None) -> None:
        """Say which filter is drawn over the plate: an entry of its own, shown while it is
        (picking any class leaves it)."""
        blocked = self.blockSignals(True)
        index = self.findData(FILTER_ENTRY)
        if index >= 0:
            self.removeItem(index)
        if name is not None:
            self.addItem(name, FILTER_ENTRY)
            self.setCurrentIndex(self.count() - 1)
        self.blockSignals(blocked)


class LayerControls(QtWidgets.QWidget):
    """Opacity, colormap and the probability/raw-score switch of the map layer."""

    opacity_changed = QtCore.pyqtSignal(float)
    colormap_changed = QtCore.pyqtSignal(str)
    raw_changed = QtCore.pyqtSignal(bool)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.opacity = QtWidgets.QSlider(QtCore.Qt.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setFixedWidth(90)
        self.opacity.setToolTip("Opacity of the map over the plate")
        self.colormap = QtWidgets.QComboBox()
        self.colormap.addItems(COLORMAPS)
        self.colormap.setToolTip("Colormap of single-channel maps")
        self.raw = QtWidgets.QCheckBox("Raw scores")
        self.raw.setToolTip("Show the class scores before softmax, instead of probabilities "
                            "on fixed 0-1 levels")
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QtWidgets.QLabel("Opacity"))
        layout.addWidget(self.opacity)
        layout.addWidget(self.colormap)
        layout.addWidget(self.raw)
        self.setSizePolicy(QtWidgets.QSizePolicy.Maximum, QtWidgets.QSizePolicy.Fixed)
        self.opacity.valueChanged.connect(lambda v: self.opacity_changed.emit(v / 100.0))
        self.colormap.currentTextChanged.connect(self.colormap_changed)
        self.raw.toggled.connect(self.raw_changed)

    def set_values(self, opacity: float, colormap: str, raw: bool) -> None:
        """Show the state's options (no signal: they are the state's already)."""
        for widget in (self.opacity, self.colormap, self.raw):
            widget.blockSignals(True)
        self.opacity.setValue(round(opacity * 100))
        if colormap in COLORMAPS:
            self.colormap.setCurrentText(colormap)
        self.raw.setChecked(raw)
        for widget in (self.opacity, self.colormap, self.raw):
            widget.blockSignals(False)
