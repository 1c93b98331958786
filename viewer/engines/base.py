"""The one small interface every inference engine implements.

An engine loads a `CaffeNet`, runs it on an input of any spatial size, and returns the blobs a
caller names, as numpy arrays. The same blob name means the same numbers under every engine:
a blob written in place (`ip1-conv` by ReLU `relu1`) is returned after the in-place layers, as
Caffe does. It also says what a pass will cost in memory before it runs (`peak_bytes`), so
the maps refuse or reroute a pass that would not fit instead of running out of memory.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

from viewer.net.weights import LEARNABLE, check_input_size
from viewer.errors import ImageError
from viewer.net import cost, netgraph
from viewer.caffe.model_io import CaffeNet
from viewer.caffe.proto import caffe_pb2


def deploy_net(net: CaffeNet) -> CaffeNet:
    """The deploy layers only, with only their learned blobs: what engines that read Caffe
    files (Caffe itself, OpenCV) are given, since they would open a Data layer's LMDB or
    refuse a loss layer."""
    param = caffe_pb2.NetParameter()
    param.CopyFrom(net.param)
    del param.layer[:]
    param.layer.extend(netgraph.deploy_layers(net.param))
    weights = {l.name: net.weights[l.name] for l in param.layer
               if l.type in LEARNABLE and l.name in net.weights}
    return CaffeNet(param, weights, source=net.source)


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

    def peak_bytes(self, input_shape: tuple[int, ...], blobs: Sequence[str]) -> int:
        """Bytes a pass over an input of this N x C x H x W shape holds at its peak, keeping
        `blobs`, worked out from the shapes alone. This default is the upper bound for an
        engine that keeps every blob (`cost.generic_peak_bytes`); engines that know better
        say so. Raises `BlobTooLarge` when a blob would exceed the element limit."""
        return cost.generic_peak_bytes(self.net, tuple(input_shape))

    def check_fits(self, input_shape: tuple[int, ...], blobs: Sequence[str],
                   limit: int | None = None) -> int:
        """The bytes the pass needs, or an `ImageError` naming the scale that would fit."""
        limit = cost.MEMORY_LIMIT if limit is None else limit
        need = self.peak_bytes(tuple(input_shape), list(blobs))
        if need <= limit:
            return need
        h, w = input_shape[2], input_shape[3]
        shrink = (limit / need) ** 0.5
        raise ImageError(
            f"a {w}x{h} input needs about {need / 1024 ** 3:.1f} GB for the dense pass on the "
            f"'{self.name}' engine, more than the {limit / 1024 ** 3:.1f} GB allowed; use a "
            f"scale about {shrink:.2f} times the current one, or a smaller image")

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
