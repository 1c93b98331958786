"""Saved maps: the npz holds what the map held, written without a copy of it in memory."""
from __future__ import annotations

import tracemalloc

import numpy as np

from viewer.export import NPZ_KEYS, save_npz
from viewer.featuremap import FeatureMap, Geometry


def test_the_npz_streams_to_disk_and_reads_back_equal(tmp_path):
    rng = np.random.default_rng(0)
    conv1 = rng.random((20, 1500, 1000), dtype=np.float32)     # 120 MB that barely compress
    probs = rng.random((3, 240, 240), dtype=np.float32)
    fm = FeatureMap(np.log(probs), probs, conv1, ["a", "b", "c"],
                    Geometry((4, 4), (0, 0), (28, 28), (1.0, 1.0)), (1000, 1000), 1.0, 1.0)
    tracemalloc.start()
    try:
        path = save_npz(fm, tmp_path / "featuremap.npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert path.stat().st_size > 100_000_000
    # numpy writes an array to a zip in chunks of 64 MiB; held as bytes, the file alone is more
    assert peak < 70_000_000
    with np.load(path) as npz:
        assert set(npz.files) == set(NPZ_KEYS)
        np.testing.assert_array_equal(npz["conv1"], conv1)
        np.testing.assert_array_equal(npz["probs"], probs)
        assert list(npz["labels"]) == ["a", "b", "c"]
