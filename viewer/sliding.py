"""What surgery replaces: the classifier run on every window, batched, timed against the dense pass.

The Surgery panel and the benchmark both need this comparison. Windows are cut from the same
prepared input the dense pass sees, at the map's stride and offset, and classified on the same
engine, so the only difference measured is one convolutional pass against many small ones.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from viewer import netgraph
from viewer.engines import create_engine
from viewer.featuremap import DenseClassifier
from viewer.model_io import CaffeNet


class MeasurementCancelled(Exception):
    """The caller asked to stop between two batches (the viewer is closing)."""


@dataclass(frozen=True)
class WindowComparison:
    """Dense pass against per-window classification of the same cells, same engine."""

    windows: int            # cells whose whole window lies inside the scaled image
    dense_ms: float
    windows_ms: float
    max_abs_diff: float     # largest class-score difference over those cells
    engine: str
    classifier: bool        # True: the original classifier; False: the FCN on window-sized inputs

    @property
    def speedup(self) -> float:
        return self.windows_ms / self.dense_ms if self.dense_ms > 0 else float("inf")


def window_stack(data: np.ndarray, stride: tuple[int, int], offset: tuple[int, int],
                 field: tuple[int, int], rows: range, cols: range) -> np.ndarray:
    """The windows of cells `rows` x `cols` of a 1 x C x H x W input, row-major by cell.

    The cells must have their whole window inside the input (`Geometry.cells_inside`).
    """
    views = np.lib.stride_tricks.sliding_window_view(data[0], field, axis=(1, 2))
    y0, x0 = offset[0] + rows.start * stride[0], offset[1] + cols.start * stride[1]
    picked = views[:, y0::stride[0], x0::stride[1]][:, :len(rows), :len(cols)]
    return np.ascontiguousarray(picked.transpose(1, 2, 0, 3, 4)).reshape(
        len(rows) * len(cols), data.shape[1], *field)


def compare_with_windows(dense: DenseClassifier, image: np.ndarray, scale: float,
                         classifier: CaffeNet | None = None, batch: int = 512,
                         cancelled: Callable[[], bool] | None = None) -> WindowComparison:
    """Time the dense pass and the batched per-window classifier on `image` at `scale`.

    The per-window net is `classifier`, else the one `dense` was made from, else the fully
    convolutional net itself on window-sized inputs (which computes the same function).
    `cancelled()` is asked between batches; True raises MeasurementCancelled.
    """
    classifier = classifier or dense.classifier
    net = classifier or dense.net
    engine = create_engine(dense.engine_name, net)
    blob = netgraph.score_blob(net.param)
    fm = dense.run(image, scale, warm=True)
    data = dense.prepare(image, scale)
    rows, cols = fm.geometry.cells_inside(data.shape[2], data.shape[3])
    rows = range(rows.start, min(rows.stop, fm.scores.shape[1]))
    cols = range(cols.start, min(cols.stop, fm.scores.shape[2]))
    g = dense.unit
    windows = window_stack(data, g.stride, g.offset, g.receptive_field, rows, cols)
    engine.forward(windows[:1], [blob])
    start = time.perf_counter()
    scores = []
    for k in range(0, len(windows), batch):
        if cancelled is not None and cancelled():
            raise MeasurementCancelled(f"stopped after {k} of {len(windows)} windows")
        chunk = windows[k:k + batch]
        scores.append(engine.forward(chunk, [blob])[blob].reshape(len(chunk), -1))
    windows_ms = (time.perf_counter() - start) * 1000.0
    if not len(windows):
        return WindowComparison(0, fm.forward_ms, windows_ms, 0.0, dense.engine_name,
                                classifier is not None)
    per_window = np.concatenate(scores).T.reshape(-1, len(rows), len(cols))
    dense_cells = fm.scores[:, rows.start:rows.stop, cols.start:cols.stop]
    diff = float(np.abs(per_window - dense_cells).max())
    return WindowComparison(len(windows), fm.forward_ms, windows_ms, diff, dense.engine_name,
                            classifier is not None)
