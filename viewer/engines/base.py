"""The one small interface every inference engine implements.

An engine loads a `CaffeNet`, runs it on an input of any spatial size, and returns the blobs a
caller names, as numpy arrays. The same blob name means the same numbers under every engine:
a blob written in place (`ip1-conv` by ReLU `relu1`) is returned after the in-place layers, as
Caffe does.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

from viewer.net.weights import check_input_size
from viewer.net import netgraph
from viewer.caffe.model_io import CaffeNet


class Engine(ABC):
    """Forward passes of one net; subclasses hide their library's conventions."""

    name = "base"

    def __init__(self, net: CaffeNet) -> None:
        self.net = net
        self.deploy = netgraph.deploy_layers(net.param)
        self.input_name, self.input_shape = next(iter(netgraph.input_shapes(net.param).items()))
        self.blob_names = list(netgraph.producers(net.param))
        self.fixed_size = any(l.type == "InnerProduct" for l in self.deploy)

    @property
    def params(self) -> dict[str, list[np.ndarray]]:
        """Weights by layer name, as pycaffe's `net.params` (as arrays)."""
        return self.net.weights

    def limit_threads(self, threads: int) -> None:
        """Use at most `threads` threads per pass (a batch runs one engine per process).
        Engines whose library picks its threads itself keep doing so."""

    def forward(self, data: np.ndarray, blobs: Sequence[str]) -> dict[str, np.ndarray]:
        """Run the net on `data` (N x C x H x W float32) and return the named blobs."""
        data = np.ascontiguousarray(data, dtype=np.float32)
        if data.ndim != 4 or data.shape[1] != self.input_shape[1]:
            raise ValueError(f"input must be N x {self.input_shape[1]} x H x W, got {data.shape}")
        if self.fixed_size and data.shape[2:] != tuple(self.input_shape[2:]):
            check_input_size(self.net, self.input_name, data.shape)
        unknown = [b for b in blobs if b not in self.blob_names and b != self.input_name]
        if unknown:
            raise KeyError(f"net has no blob named {unknown[0]!r}")
        wanted = [b for b in blobs if b != self.input_name]
        out = self._forward(data, wanted) if wanted else {}
        if self.input_name in blobs:
            out[self.input_name] = data
        return {b: out[b] for b in blobs}

    @abstractmethod
    def _forward(self, data: np.ndarray, blobs: list[str]) -> dict[str, np.ndarray]:
        """Engine-specific forward pass returning exactly `blobs` (never the input)."""
