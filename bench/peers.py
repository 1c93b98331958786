"""Engines that are not part of the viewer but that the benchmark compares with: real pycaffe.

A registered engine of the same name wins; this adapter is used only when `import caffe`
works and the viewer has no `caffe` engine of its own.
"""
from __future__ import annotations

import importlib.util
import os
import tempfile

import numpy as np

from viewer.model_io import CaffeNet, write_net


def pycaffe_available() -> bool:
    return importlib.util.find_spec("caffe") is not None


class PycaffePass:
    """pycaffe's `net.forward()` on the same weights, reshaped to each input."""

    name = "caffe"

    def __init__(self, net: CaffeNet) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        import caffe

        caffe.set_mode_cpu()
        with tempfile.TemporaryDirectory() as tmp:
            proto, weights = os.path.join(tmp, "net.prototxt"), os.path.join(tmp, "net.caffemodel")
            write_net(net, proto, weights)
            self._net = caffe.Net(proto, caffe.TEST, weights=weights)
        self._input = self._net.inputs[0]

    def forward(self, data: np.ndarray, blobs: list[str]) -> dict[str, np.ndarray]:
        self._net.blobs[self._input].reshape(*data.shape)
        self._net.reshape()
        self._net.blobs[self._input].data[...] = data
        self._net.forward()
        return {b: self._net.blobs[b].data.copy() for b in blobs}
