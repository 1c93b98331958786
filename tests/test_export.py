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
                    Geometry((4, 5), (-2, -3), (28, 30), (1.0, 1.0)), (1000, 999), 0.75, 1.0)
    tracemalloc.start()
    try:
        path = save_npz(fm, tmp_path / "featuremap.npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert path.stat().st_size > 100_000_000
    # numpy writes an array to a zip in chunks of 64 MiB; held as bytes, the file alone is more
    assert peak < 70_000_000
    _assert_npz_holds(path, fm)


def _assert_npz_holds(path, fm: FeatureMap) -> None:
    """Every key of the file against the map it came from: no key may stand for another."""
    with np.load(path) as npz:
        assert set(npz.files) == set(NPZ_KEYS)
        np.testing.assert_array_equal(npz["probs"], fm.probs)
        np.testing.assert_array_equal(npz["scores"], fm.scores)
        conv1 = fm.conv1 if fm.conv1 is not None else np.zeros((0, 0, 0), np.float32)
        np.testing.assert_array_equal(npz["conv1"], conv1)
        assert npz["conv1"].shape == conv1.shape
        assert list(npz["labels"]) == fm.labels
        assert npz["scale"].dtype == np.float64 and float(npz["scale"]) == fm.scale
        assert tuple(npz["stride"]) == fm.geometry.stride
        assert tuple(npz["offset"]) == fm.geometry.offset
        assert tuple(npz["receptive_field"]) == fm.geometry.receptive_field
        assert tuple(npz["image_shape"]) == fm.image_shape


def test_every_key_of_a_small_map_reads_back_as_the_map_held_it(tmp_path):
    rng = np.random.default_rng(1)
    scores = rng.normal(0, 3, (4, 5, 7)).astype(np.float32)
    probs = np.exp(scores) / np.exp(scores).sum(axis=0)
    for conv1 in (rng.random((3, 9, 11), dtype=np.float32), None):
        fm = FeatureMap(scores, probs, conv1, ["a", "b", "c", "bg"],
                        Geometry((4, 3), (-1, -2), (28, 26), (0.5, 0.5)), (60, 80), 0.5, 2.0)
        _assert_npz_holds(save_npz(fm, tmp_path / "map.npz"), fm)
