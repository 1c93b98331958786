"""What surgery replaces: the classifier run on every window, batched, timed against the dense pass.

The Surgery panel and the benchmark both need this comparison. Windows are cut from the same
prepared input the dense pass sees, at the map's stride and offset, and classified on the same
engine, so the only difference measured is one convolutional pass against many small ones.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from viewer.net import cost, netgraph
from viewer.engines import create_engine
from viewer.maps.featuremap import DenseClassifier
from viewer.caffe.model_io import CaffeNet


BATCH_BYTES = 256 << 20     # activations of one batch of windows


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
    timed: int = -1         # windows classified; fewer than `windows` when a budget cut the
                            # timing short (`windows_ms` is then extrapolated); -1: all

    @property
    def sampled(self) -> bool:
        return 0 <= self.timed < self.windows

    @property
    def speedup(self) -> float:
        return self.windows_ms / self.dense_ms if self.dense_ms > 0 else float("inf")


def window_batches(data: np.ndarray, stride: tuple[int, int], offset: tuple[int, int],
                   field: tuple[int, int], rows: range, cols: range,
                   batch: int) -> Iterator[np.ndarray]:
    """The windows of cells `rows` x `cols` of a 1 x C x H x W input, row-major by cell,
    `batch` at a time as N x C x h x w arrays.

    Only one batch is cut at a time: at the scales the lean engine allows, a photo has a
    million cells, whose windows together would take gigabytes. The cells must have their
    whole window inside the input (`Geometry.cells_inside`).
    """
    views = np.lib.stride_tricks.sliding_window_view(data[0], field, axis=(1, 2))
    cells = len(rows) * len(cols)
    for start in range(0, cells, batch):
        index = np.arange(start, min(start + batch, cells))
        y = offset[0] + (rows.start + index // len(cols)) * stride[0]
        x = offset[1] + (cols.start + index % len(cols)) * stride[1]
        yield np.ascontiguousarray(views[:, y, x].transpose(1, 0, 2, 3))


def compare_with_windows(dense: DenseClassifier, image: np.ndarray, scale: float,
                         classifier: CaffeNet | None = None, batch: int = 512,
                         cancelled: Callable[[], bool] | None = None,
                         budget_s: float | None = None) -> WindowComparison:
    """Time the dense pass and the batched per-window classifier on `image` at `scale`.

    The per-window net is `classifier`, else the one `dense` was made from, else the fully
    convolutional net itself on window-sized inputs (which computes the same function).
    `cancelled()` is asked between batches; True raises MeasurementCancelled. A batch holds at
    most BATCH_BYTES of the net's activations (a zoo net's 512 windows took 9.8 GB). With a
    `budget_s`, the windows stop once that time is spent, and the time of all of them is
    extrapolated from those done (`timed`).
    """
    classifier = classifier or dense.classifier
    net = classifier or dense.net
    blob = netgraph.score_blob(net.param)
    fm = dense.run(image, scale, warm=True)
    engine = create_engine(fm.engine, net)   # the lean one when the dense pass fell back to it
    data = dense.prepare(image, scale)
    window = (1, data.shape[1], *dense.unit.receptive_field)
    batch = max(1, min(batch, BATCH_BYTES // max(1, cost.generic_peak_bytes(net, window))))
    rows, cols = fm.geometry.cells_inside(data.shape[2], data.shape[3])
    rows = range(rows.start, min(rows.stop, fm.scores.shape[1]))
    cols = range(cols.start, min(cols.stop, fm.scores.shape[2]))
    g = dense.unit
    count = len(rows) * len(cols)
    batches = window_batches(data, g.stride, g.offset, g.receptive_field, rows, cols, batch)
    first = next(batches, None)
    if first is None:
        return WindowComparison(0, fm.forward_ms, 0.0, 0.0, fm.engine, classifier is not None)
    engine.forward(first[:1], [blob])
    start = time.perf_counter()
    scores = []
    for k, chunk in enumerate(itertools.chain([first], batches)):
        if cancelled is not None and cancelled():
            raise MeasurementCancelled(f"stopped after {k * batch} of {count} windows")
        scores.append(engine.forward(chunk, [blob])[blob].reshape(len(chunk), -1))
        if budget_s is not None and time.perf_counter() - start > budget_s:
            break
    timed = sum(len(s) for s in scores)
    windows_ms = (time.perf_counter() - start) * 1000.0 * count / timed
    per_window = np.concatenate(scores).T        # classes x timed cells, row-major by cell
    dense_cells = fm.scores[:, rows.start:rows.stop, cols.start:cols.stop].reshape(
        len(per_window), -1)[:, :timed]
    diff = float(np.abs(per_window - dense_cells).max())
    return WindowComparison(count, fm.forward_ms, windows_ms, diff, fm.engine,
                            classifier is not None, timed if timed < count else -1)
