"""The viewer's fine map (stride 1): made after the coarse map, on the map worker, replacing it.

The coarse map shows first (it takes a sixteenth of the time on LeNet); the fine pass of the
same scale follows and takes its place, keeping the coarse map's reading. Plain functions and
no widgets, like `jobs`; the controller decides when to ask.
"""
from __future__ import annotations

import threading
import weakref

import numpy as np

from viewer.errors import ViewerError
from viewer.maps.featuremap import DenseClassifier
from viewer.maps.finemap import RAREFACTION, FineMethod, fine_method
from viewer.app.jobs import MapResult, map_of

FINE_STRIDE = 1
_made: "weakref.WeakKeyDictionary[DenseClassifier, DenseClassifier]" = \
    weakref.WeakKeyDictionary()
_lock = threading.Lock()


def fine_dense(dense: DenseClassifier) -> DenseClassifier:
    """`dense` at stride 1, made on first need (its engine takes a moment) and kept with it."""
    with _lock:
        if dense not in _made:
            _made[dense] = dense.at_stride(FINE_STRIDE)
        return _made[dense]


def fine_map(dense: DenseClassifier, image: np.ndarray, scale: float, blobs: tuple[str, ...],
             coarse: MapResult) -> MapResult:
    """The stride-1 map at the coarse map's scale and of its region, with its reading."""
    fm = map_of(fine_dense(dense), image, scale, blobs, coarse.fm.region)
    return MapResult(fm, coarse.reading, coarse.note)


def is_fine(result: MapResult | None) -> bool:
    return result is not None and result.fm.geometry.stride == (FINE_STRIDE, FINE_STRIDE)


def method_of(dense: DenseClassifier) -> FineMethod:
    """How the fine map of this model is computed (no engine is made)."""
    return fine_method(dense.net, dense.engine_name, FINE_STRIDE)


def surgery_rows(dense: DenseClassifier) -> list[tuple[str, str, str, str, str]]:
    """The Surgery table's rows for the fine map, as it shows InnerProduct -> Convolution:
    each layer whose stride, dilation or pad rarefaction changed, or the fallback used."""
    try:
        method = method_of(dense)
    except ViewerError as err:
        return [(f"fine map (stride {FINE_STRIDE})", "", "", "unavailable", str(err))]
    head = (f"fine map (stride {method.stride})", "", "by", method.method, method.note)
    rows = [head]
    for c in method.changes if method.method == RAREFACTION else []:
        before, after = zip(*[(_pair(old), _pair(new)) for old, new in
                              (c.stride, c.dilation, c.pad)])
        rows.append((f"{c.layer} ({c.kind})", "stride {} dilation {} pad {}".format(*before),
                     "->", f"{c.layer} (fine)", "stride {} dilation {} pad {}".format(*after)))
    return rows


def _pair(p: tuple[int, int]) -> str:
    return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"
