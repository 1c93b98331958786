"""The per-window comparison: the same windows the dense map covers, cut a batch at a time, on
the engine the dense pass ran on."""
from __future__ import annotations

import numpy as np

from conftest import plate_like
from viewer.net import cost
from viewer.maps.featuremap import DenseClassifier
from viewer.maps.sliding import compare_with_windows, window_batches


def test_batches_hold_every_window_once_in_row_major_order():
    data = np.random.default_rng(0).random((1, 2, 30, 40), dtype=np.float32)
    rows, cols = range(1, 5), range(2, 9)
    batches = list(window_batches(data, (4, 3), (-1, 0), (6, 5), rows, cols, batch=10))
    assert [len(b) for b in batches] == [10, 10, 8]
    windows = np.concatenate(batches)
    expected = [data[0, :, -1 + 4 * i:-1 + 4 * i + 6, 3 * j:3 * j + 5]
                for i in rows for j in cols]
    np.testing.assert_array_equal(windows, np.stack(expected))


def test_a_pass_that_falls_back_is_compared_on_the_lean_engine(lenet, monkeypatch):
    """360x480 needs 102 MB on onnxruntime and 75 MB on blas: under an 80 MB limit the dense
    pass runs on blas, and so do the windows it is compared with."""
    monkeypatch.setattr(cost, "MEMORY_LIMIT", 80 * 2**20)
    dense = DenseClassifier(lenet, "onnx")
    comparison = compare_with_windows(dense, plate_like(360, 480, seed=5), 1.0, batch=1000)
    assert comparison.engine == "blas" and comparison.classifier
    assert comparison.windows == 84 * 114           # the cells whose window is inside
    assert comparison.max_abs_diff < 2e-4           # float32 rounding of scores up to ~1.6
