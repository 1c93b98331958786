"""OpenCV DNN engine: reads the net from in-memory prototxt and caffemodel bytes.

OpenCV names outputs by layer, not by blob, and returns an in-place ReLU's blob from the layer
before it. Asking for the *last* layer that writes each blob gives Caffe's meaning of the name.
"""
from __future__ import annotations

import numpy as np

from viewer.net import netgraph
from viewer.engines.base import Engine, deploy_net
from viewer.errors import EngineError
from viewer.caffe.model_io import CaffeNet, caffemodel_bytes, prototxt_text
from viewer.caffe.proto import caffe_pb2



def _untransposed(net: CaffeNet) -> CaffeNet:
    """OpenCV ignores InnerProduct's `transpose: true`: give it the same layer with W.T."""
    flipped = {l.name for l in net.param.layer
               if l.type == "InnerProduct" and l.inner_product_param.transpose}
    if not flipped:
        return net
    param = caffe_pb2.NetParameter()
    param.CopyFrom(net.param)
    weights = dict(net.weights)
    for layer in param.layer:
        if layer.name in flipped:
            layer.inner_product_param.transpose = False
            w, *rest = weights[layer.name]
            weights[layer.name] = [np.ascontiguousarray(w.T), *rest]
    return CaffeNet(param, weights, net.source)


def _without_scalars(net: CaffeNet) -> CaffeNet:
    """OpenCV cannot make a 0-axis blob (a shared PReLU slope, as Caffe saves it): give it the
    same value as a 1-element blob."""
    if not any(a.ndim == 0 for blobs in net.weights.values() for a in blobs):
        return net
    weights = {name: [a.reshape(1) if a.ndim == 0 else a for a in blobs]
               for name, blobs in net.weights.items()}
    return CaffeNet(net.param, weights, net.source)


def _check_lrn(net: CaffeNet) -> None:
    """OpenCV's LRN across channels uses 1 for Caffe's constant k (measured: 0.33 off at k 2)."""
    for layer in netgraph.deploy_layers(net.param):
        p = layer.lrn_param
        if layer.type == "LRN" and p.norm_region == caffe_pb2.LRNParameter.ACROSS_CHANNELS \
                and p.k != 1:
            raise EngineError(f"OpenCV computes LRN '{layer.name}' with k 1 instead of its "
                              f"k {p.k:g}; use another engine")


class OpenCVEngine(Engine):
    """cv2.dnn forward pass on the CPU."""

    name = "opencv"

    def __init__(self, net: CaffeNet) -> None:
        super().__init__(net)
        import cv2

        if not hasattr(cv2.dnn, "readNetFromCaffe"):
            raise EngineError(f"OpenCV {cv2.__version__} has no Caffe importer; install "
                              "opencv-python-headless<5")
        _check_lrn(net)
        plain = _without_scalars(_untransposed(net))
        deploy = deploy_net(plain)
        proto = np.frombuffer(prototxt_text(deploy.param).encode(), np.uint8)
        model = np.frombuffer(caffemodel_bytes(deploy), np.uint8)
        try:
            self._net = cv2.dnn.readNetFromCaffe(proto, model)
        except cv2.error as err:
            raise EngineError(f"OpenCV cannot load {net.source}: {str(err).strip()}") from None
        self._net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self._net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        # With fusion, OpenCV folds a 1x1 convolution, its in-place ReLU and a Concat reading
        # it into one step and returns an unwritten buffer for the fused blob.
        self._net.enableFusion(False)
        self._layer_of = {blob: layer.name for blob, layer in netgraph.producers(net.param).items()}

    def _forward(self, data: np.ndarray, blobs: list[str]) -> dict[str, np.ndarray]:
        import cv2

        self._net.setInput(data, self.input_name)
        names = [self._layer_of[b] for b in blobs]
        try:
            outs = self._net.forward(names)
        except cv2.error as err:
            raise EngineError(f"OpenCV failed on a {data.shape[3]}x{data.shape[2]} input: "
                              f"{str(err).strip().splitlines()[-1]}") from None
        return {b: np.array(o, dtype=np.float32, copy=True) for b, o in zip(blobs, outs)}
