"""Model > Preprocessing: the model's Transformer values, editable, and the input they make.

The fields are the command line's flags (named beside each), parsed by the same functions, so
a value the CLI refuses is refused here with the same message. The picture shows the prepared
input as the net receives it: one tile per net channel, each stretched over its own range.
"""
from __future__ import annotations

import numpy as np
from PyQt5 import QtCore, QtWidgets

from viewer.app.pictures import fitted, normalized
from viewer.gui.pixmaps import to_pixmap
from viewer.app.scale import scale_text
from viewer.maps.images import scaled_size
from viewer.maps.preprocess import Transformer, parse_overrides
from viewer.errors import PreprocessError

PREVIEW_HEIGHT = 150
PREVIEW_SIDE = 600


def channel_names(t: Transformer) -> list[str]:
    """What each net channel holds: "B", "G", "R" after a 2,1,0 swap; "gray" otherwise."""
    if t.color:
        return ["RGB"[k] for k in (t.channel_swap or (0, 1, 2))]
    return ["gray"] * t.channels


def preview_tiles(data: np.ndarray) -> np.ndarray:
    """The net channels side by side (each over its own range), a white gap between them."""
    tiles = [fitted(normalized(channel), PREVIEW_HEIGHT) for channel in data]
    gap = np.full((PREVIEW_HEIGHT, 6), 255, np.uint8)
    return np.hstack([part for tile in tiles for part in (tile, gap)][:-1])


class PreprocessDialog(QtWidgets.QDialog):
    """Edit channel swap, raw scale, mean and input scale; `transformer()` after `accept`."""

    def __init__(self, current: Transformer, image: np.ndarray, scale: float,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preprocessing")
        self.image, self.scale, self.channels = image, scale, current.channels
        self.swap = QtWidgets.QLineEdit()
        self.raw = QtWidgets.QLineEdit()
        self.mean = QtWidgets.QLineEdit()
        self.input_scale = QtWidgets.QLineEdit()
        self.swap.setEnabled(current.color)
        self.mean.setPlaceholderText("none")
        form = QtWidgets.QFormLayout()
        form.addRow("Channel swap (--channel-swap)", self.swap)
        form.addRow("Raw scale (--raw-scale)", self.raw)
        form.addRow("Mean, in the net's channel order (--mean)", self.mean)
        form.addRow("Input scale (--input-scale)", self.input_scale)
        note = QtWidgets.QLabel("Caffe's order: resize to the scale, channel swap, raw scale, "
                                "subtract the mean, input scale.")
        note.setWordWrap(True)
        self.picture = QtWidgets.QLabel()
        self.picture.setAlignment(QtCore.Qt.AlignCenter)
        self.caption = QtWidgets.QLabel()
        self.caption.setWordWrap(True)
        self.caption.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok |
                                             QtWidgets.QDialogButtonBox.Cancel |
                                             QtWidgets.QDialogButtonBox.RestoreDefaults)
        self.ok = buttons.button(QtWidgets.QDialogButtonBox.Ok)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QtWidgets.QDialogButtonBox.RestoreDefaults).clicked.connect(
            lambda: self.set_values(Transformer.default_for(self.channels)))
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(QtWidgets.QLabel("<b>The prepared input</b> (each channel over its "
                                          "own range)"))
        layout.addWidget(self.picture)
        layout.addWidget(self.caption)
        layout.addWidget(buttons)
        for field in (self.swap, self.raw, self.mean, self.input_scale):
            field.textChanged.connect(self.update_preview)
        self.set_values(current)

    def set_values(self, t: Transformer) -> None:
        self.swap.setText(",".join(map(str, t.channel_swap)) if t.channel_swap else "none")
        self.raw.setText(f"{t.raw_scale:g}")
        self.mean.setText(",".join(f"{v:g}" for v in t.mean))
        self.input_scale.setText(f"{t.input_scale:g}")
        self.update_preview()

    def transformer(self) -> Transformer:
        """The values as a Transformer; a PreprocessError names the field's flag."""
        overrides = parse_overrides(self.mean.text() or "none",
                                    self.swap.text() if self.channels == 3 else None,
                                    self.raw.text(), self.input_scale.text())
        return overrides.apply(Transformer.default_for(self.channels))

    def update_preview(self) -> None:
        """Redraw the prepared input, or say why the values cannot make one (OK disabled)."""
        try:
            t = self.transformer()
        except PreprocessError as err:
            self.caption.setText(f"<span style='color:#c22'>{err}</span>")
            self.ok.setEnabled(False)
            return
        self.ok.setEnabled(True)
        # A photo's full-size input takes long to make on each keystroke: the preview is made
        # at most PREVIEW_SIDE pixels wide, with the same values.
        preview = min(self.scale, PREVIEW_SIDE / max(self.image.shape[:2]))
        data = t.prepare(self.image, preview)[0]
        self.picture.setPixmap(to_pixmap(preview_tiles(data)))
        ranges = "; ".join(f"channel {k} ({name}): {c.min():.4g} to {c.max():.4g}"
                           for k, (name, c) in enumerate(zip(channel_names(t), data)))
        height, width = scaled_size(self.image.shape, self.scale)
        self.caption.setText(f"{width}x{height} pixels at scale {scale_text(self.scale)}: {ranges}")
