"""What the surgery did and what it buys: layers before and after, the equivalence check, the timing.

The numbers come from `surgery.verify_equivalence` and `sliding.compare_with_windows`, run on
the slow worker; this panel only lays them out.
"""
from __future__ import annotations

from PyQt5 import QtCore, QtWidgets

from viewer.net import netgraph
from viewer.app.scale import scale_text
from viewer.app.jobs import SurgeryCheck
from viewer.app.session import LoadedModel
from viewer.caffe.model_io import CaffeNet
from viewer.maps.sliding import WindowComparison
from viewer.surgery.verify import TOLERANCE, Verification

COLUMNS = ("classifier layer", "weights", "", "fully convolutional layer", "weights")


def shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def weight_rows(net: CaffeNet) -> list[tuple[str, str, str]]:
    """(layer, type, weight shapes) for each deploy layer that has weights."""
    return [(l.name, l.type, ", ".join(shape_text(a.shape) for a in net.weights[l.name]))
            for l in netgraph.deploy_layers(net.param) if l.name in net.weights]


def surgery_rows(model: LoadedModel) -> list[tuple[str, str, str, str, str]]:
    """One row per weighted layer: classifier side, arrow, fully convolutional side."""
    after = {name: (kind, shapes) for name, kind, shapes in weight_rows(model.dense.net)}
    if model.classifier is None:
        return [("", "", "", f"{n} ({k})", s) for n, (k, s) in after.items()]
    renamed = {c.layer: c.new_layer for c in model.conversions}
    rows = []
    for name, kind, shapes in weight_rows(model.classifier):
        new = renamed.get(name, name)
        new_kind, new_shapes = after.get(new, ("?", "?"))
        arrow = "->" if name in renamed else "="
        rows.append((f"{name} ({kind})", shapes, arrow, f"{new} ({new_kind})", new_shapes))
    return rows + [(f"{c.layer} (Pooling)", "global", "->", f"{c.new_layer} (Pooling)",
                    f"{shape_text(c.new_shape)} kernel, stride 1")
                   for c in model.conversions if c.kind == "Pooling"]


def verification_text(check: Verification | None) -> str:
    if check is None:
        return ("Equivalence: no classifier is loaded beside this model, so there is nothing to "
                "compare it with (open the classifier to check the surgery).")
    verdict = "<b style='color:#2a2'>passed</b>" if check.passed else \
        "<b style='color:#c22'>FAILED</b>"
    # The check's own tolerance: float32 rounding grows with the scores, so it is relative to
    # the largest one (surgery.Verification); README says the same.
    scaled = (f" = {TOLERANCE:g} x the largest score, {check.largest:.3g}: the tolerance is "
              "relative, because float32 rounding grows with the scores") \
        if check.largest > 1 else f" = {TOLERANCE:g}, as no score exceeds 1"
    return (f"Equivalence: classifier and fully convolutional net on the same {check.inputs} "
            f"windows ({check.engine}): max |score difference| = {check.max_abs_diff:.2g}, "
            f"{verdict} (tolerance {check.tolerance:.2g}{scaled}).")


def timing_text(c: WindowComparison, scale: float, shown: float | None = None) -> str:
    """The timing at `scale`; when the map on screen is at another scale (`shown`), says so."""
    who = "the classifier" if c.classifier else "the net on window-sized inputs"
    takes = (f"would take <b>{c.windows_ms:.0f} ms</b> (timed on {c.timed} of them)"
             if c.sampled else f"takes <b>{c.windows_ms:.0f} ms</b>")
    stale = (f" <i>The map is at scale {scale_text(shown)} now: Measure again at this scale to "
             "time it there.</i>") if shown is not None and scale_text(shown) != \
        scale_text(scale) else ""
    return (f"Speed at scale {scale_text(scale)} ({c.engine}): one dense pass covers {c.windows} windows in "
            f"<b>{c.dense_ms:.0f} ms</b>; {who} on every window, batched, {takes}. The dense "
            f"pass is <b>{c.speedup:.1f}x faster</b>, and its scores match the per-window ones "
            f"to {c.max_abs_diff:.2g}.{stale}")


def summary_text(model: LoadedModel) -> str:
    """What was converted, and whether it happened just now in memory or in a shipped file."""
    converted = ", ".join(f"{c.layer} -> {c.new_layer}" if c.kind == "InnerProduct" else
                          f"global {c.layer} -> {shape_text(c.new_shape)} pooling"
                          for c in model.conversions)
    if model.dense.classifier is not None:
        kinds = {c.kind for c in model.conversions}
        done = " and ".join(
            what for kind, what in (
                ("InnerProduct", "its InnerProduct layers were cast into convolutions with the "
                                 "same weights"),
                ("Pooling", "its global poolings were given the kernel of their input"))
            if kind in kinds)
        return (f"<b>{model.label}</b> is a classifier: {done} ({converted}) in memory. "
                "File > Export surgered model > Caffe (or ONNX) writes the result.")
    if converted:
        return (f"<b>{model.label}</b> is the surgered twin of the classifier on the left: "
                f"InnerProduct layers cast into convolutions with the same weights ({converted}).")
    return f"<b>{model.label}</b> is fully convolutional; no classifier is known for it."


class SurgeryPanel(QtWidgets.QWidget):
    """The table of layers, the check and the timing; `check_requested` re-measures."""

    check_requested = QtCore.pyqtSignal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        header = self.table.horizontalHeader()
        for col in range(len(COLUMNS)):
            header.setSectionResizeMode(col, QtWidgets.QHeaderView.ResizeToContents)
        header.setStretchLastSection(True)
        self.summary = QtWidgets.QLabel()
        self.equivalence = QtWidgets.QLabel()
        self.timing = QtWidgets.QLabel()
        for label in (self.summary, self.equivalence, self.timing):
            label.setWordWrap(True)
        self.button = QtWidgets.QPushButton("Measure again at this scale")
        self.button.clicked.connect(self.check_requested)
        column = QtWidgets.QWidget()
        text = QtWidgets.QVBoxLayout(column)
        text.setContentsMargins(0, 0, 0, 0)
        text.addWidget(self.summary)
        text.addWidget(self.equivalence)
        text.addWidget(self.timing)
        text.addWidget(self.button, 0, QtCore.Qt.AlignLeft)
        text.addStretch(1)
        # The words scroll when the dock is short: squeezed, wrapped labels lost their lines.
        self.words = QtWidgets.QScrollArea()
        self.words.setWidgetResizable(True)
        self.words.setFrameShape(QtWidgets.QFrame.NoFrame)
        self.words.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)
        self.words.setWidget(column)
        layout = QtWidgets.QHBoxLayout(self)
        layout.addWidget(self.table, 3)
        layout.addWidget(self.words, 2)
        self.check: SurgeryCheck | None = None
        self.scale: float | None = None

    def set_model(self, model: LoadedModel) -> None:
        rows = surgery_rows(model)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                self.table.setItem(r, c, QtWidgets.QTableWidgetItem(text))
        self.summary.setText(summary_text(model))
        self.equivalence.setText(verification_text(model.verification)
                                 if model.verification is not None else
                                 "Equivalence: measuring...")
        self.timing.setText("Speed: not measured yet (Measure again at this scale).")
        self.check = None

    def set_fine(self, rows: list[tuple[str, str, str, str, str]]) -> None:
        """Rows after the surgery's: how the fine map is computed (viewer.app.fine)."""
        start = self.table.rowCount()
        self.table.setRowCount(start + len(rows))
        for r, row in enumerate(rows, start=start):
            for c, text in enumerate(row):
                self.table.setItem(r, c, QtWidgets.QTableWidgetItem(text))

    def set_measuring(self) -> None:
        self.timing.setText("Speed: measuring...")
        self.button.setEnabled(False)

    def set_check(self, check: SurgeryCheck) -> None:
        self.check = check
        self.equivalence.setText(verification_text(check.verification))
        self.timing.setText(timing_text(check.comparison, check.scale, self.scale))
        self.button.setEnabled(True)

    def clear_timing(self) -> None:
        """Another image: the timing was of the last one."""
        self.check = None
        if self.button.isEnabled():
            self.timing.setText("Speed: not measured on this image yet (Measure again at this "
                                "scale).")

    def set_scale(self, scale: float) -> None:
        """The scale of the map on screen: a timing at another one says it is not this one."""
        self.scale = scale
        if self.check is not None and self.button.isEnabled():
            self.timing.setText(timing_text(self.check.comparison, self.check.scale, scale))

    def set_cancelled(self) -> None:
        self.timing.setText("Speed: the measurement was cancelled.")
        self.button.setEnabled(True)

    def set_failed(self, message: str) -> None:
        self.timing.setText(f"Speed: could not measure: {message}")
        self.button.setEnabled(True)
