"""Progress fractions from inside long core calls: a blas pass by its bands, an npz by pieces."""
from __future__ import annotations

import io

import numpy as np

from conftest import plate_like
from viewer import progress
from viewer.maps import export
from viewer.engines.blas_engine import BlasEngine
from viewer.maps.featuremap import DenseClassifier


def heard(call) -> list[float]:
    fractions: list[float] = []
    with progress.reporting(fractions.append):
        call()
    return fractions


def test_nested_parts_map_into_their_share():
    def work():
        progress.report(0.5)
        with progress.part(0.5, 1.0):
            progress.report(0.5)
            with progress.part(0.0, 0.5):
                progress.report(1.0)
    assert heard(work) == [0.5, 0.75, 0.75, 0.75, 1.0]
    progress.report(0.3)                         # nobody listens: nothing happens


def test_a_blas_pass_reports_its_bands_in_order_up_to_one(lenet):
    dense = DenseClassifier(lenet, "blas")
    dense.engine = BlasEngine(dense.net, band_bytes=256 * 1024)   # many small bands
    image = plate_like(300, 900)
    fractions = heard(lambda: dense.run(image, 1.0))
    assert len(fractions) > 20 and fractions[-1] == 1.0
    assert all(b >= a - 1e-9 for a, b in zip(fractions, fractions[1:]))
    # the products are the work: the first convolution is not half the pass
    assert sum(f < 0.5 for f in fractions) > 5


def test_the_npz_is_written_in_pieces_and_loads_as_savez_would(monkeypatch):
    monkeypatch.setattr(export, "NPZ_PIECE", 1000)
    arrays = dict(probs=np.random.default_rng(0).random((3, 40, 50), np.float32),
                  labels=np.array(["A", "background"]), scale=np.float64(0.255),
                  empty=np.zeros((0, 0, 0), np.float32))
    buffer = io.BytesIO()
    fractions = heard(lambda: export.write_npz(buffer, arrays))
    assert len(fractions) >= 24 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    buffer.seek(0)
    with np.load(buffer) as data:
        assert set(data.files) == set(arrays)
        for name, value in arrays.items():
            assert data[name].dtype == value.dtype and np.array_equal(data[name], value)
