"""Real Caffe engine (pycaffe, CPU): the library whose semantics every other engine reproduces.

pycaffe is built by `make caffe`. Caffe does not report errors: a bad prototxt or a shape
mismatch is a glog CHECK failure that aborts the whole process. So Caffe only ever sees a net
that our reader validated (`check_weights`), that we re-serialized and that Caffe's own
schema parsed first; the few Caffe checks our reader does not make are made here in words, and
every new input size is shape-checked before Caffe reshapes to it.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor

from viewer.net.weights import LEARNABLE, check_input_size, check_weights
from viewer.net import netgraph
from viewer.engines.base import Engine, deploy_net
from viewer.errors import EngineError, ModelError
from viewer.caffe.model_io import CaffeNet, caffemodel_bytes, prototxt_text
from viewer.caffe.proto import caffe_pb2

MAX_SETTING = 1 << 24      # for any unsigned layer setting


def import_caffe():
    """pycaffe in CPU mode, with glog quiet: it reads GLOG_minloglevel when the library loads."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    import caffe

    caffe.set_mode_cpu()
    return caffe



def check_layers(param: caffe_pb2.NetParameter) -> None:
    """Refuse, in words, what Caffe aborts on at load time and `netgraph` lets through."""
    names = [layer.name for layer in param.layer]
    for layer in param.layer:
        if layer.type in LEARNABLE and names.count(layer.name) > 1:
            raise ModelError(f"{names.count(layer.name)} layers are named '{layer.name}'; Caffe "
                             "gives weights to layers by name, so the name of a layer with "
                             "weights must be unique")
    for layer in param.layer:
        where = f"{layer.type} layer '{layer.name}'"
        if layer.type in ("Flatten", "Split") and set(layer.top) & set(layer.bottom):
            raise ModelError(f"{where} cannot work in place in Caffe")
        if layer.type == "Scale" and len(layer.bottom) != 1:
            raise ModelError(f"{where} with {len(layer.bottom)} inputs is not supported")
        _check_int_range(layer, where)
        if layer.type == "BatchNorm" and any(s.lr_mult != 0 for s in layer.param):
            raise ModelError(f"{where} gives its statistics a non-zero lr_mult; Caffe refuses "
                             "that (remove the param blocks or set lr_mult: 0)")
        if layer.type == "Convolution":
            p = layer.convolution_param
            if len(p.kernel_size) and (p.kernel_h or p.kernel_w):
                raise ModelError(f"{where} gives both kernel_size and kernel_h/kernel_w")
        p = layer.pooling_param
        if layer.type == "Pooling" and p.global_pooling and (
                p.HasField("kernel_size") or p.kernel_h or p.kernel_w or p.pad or p.pad_h
                or p.pad_w or p.stride != 1 or p.stride_h or p.stride_w):
            raise ModelError(f"{where}: global pooling takes no kernel, pad or stride")


def _check_int_range(message, where: str) -> None:
    """Caffe does its arithmetic on the unsigned settings (kernel, stride, pad, local_size, ...)
    in ints, which overflow near 2**31 and turn sizes negative; no real net comes close."""
    unsigned = (FieldDescriptor.CPPTYPE_UINT32, FieldDescriptor.CPPTYPE_UINT64)
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in (value if field.is_repeated else [value]):
                _check_int_range(item, where)
        elif field.cpp_type in unsigned:
            big = [v for v in (value if field.is_repeated else [value]) if v > MAX_SETTING]
            if big:
                raise ModelError(f"{where}: {field.name} {big[0]} is too large (at most "
                                 f"{MAX_SETTING})")


def _backward_copies(layer: caffe_pb2.LayerParameter) -> int:
    """Input-sized buffers Caffe fills during a TEST forward for a backward pass that never
    comes: BatchNorm's normalised copy and divisor, the input of an in-place Scale or PReLU,
    Eltwise MAX's argmax."""
    if layer.type == "BatchNorm":
        return 2
    if layer.type in ("Scale", "PReLU") and list(layer.top) == list(layer.bottom[:1]):
        return 1
    if layer.type == "Eltwise" and layer.eltwise_param.operation == \
            caffe_pb2.EltwiseParameter.MAX:
        return 1
    return 0


class CaffeEngine(Engine):
    """pycaffe's `caffe.Net` in the TEST phase, reshaped to each input size."""

    name = "caffe"

    def __init__(self, net: CaffeNet) -> None:
        super().__init__(net)
        check_weights(net, None)
        deploy = deploy_net(net)
        check_layers(deploy.param)
        check_input_size(net, self.input_name, self.input_shape)
        text = prototxt_text(deploy.param)
        caffe = import_caffe()
        try:
            text_format.Parse(text, caffe.proto.caffe_pb2.NetParameter())
        except text_format.ParseError as err:
            raise EngineError(f"Caffe cannot read {net.source}: {err}") from None
        # caffe.Net reads files; they are not needed once it has loaded them.
        with tempfile.TemporaryDirectory(prefix="netsurgery-caffe-") as folder:
            prototxt, weights = Path(folder, "deploy.prototxt"), Path(folder, "net.caffemodel")
            prototxt.write_text(text)
            weights.write_bytes(caffemodel_bytes(deploy))
            self._net = caffe.Net(str(prototxt), str(weights), caffe.TEST)
        self._sizes_checked: set[tuple[int, ...]] = set()

    def peak_bytes(self, input_shape: tuple[int, ...], blobs: list[str]) -> int:
        """What Caffe holds after a pass (`viewer.net.cost`): every blob whatever was asked for,
        each Convolution's own im2col buffer (1x1 ones have none), MAX pooling's index map,
        LRN's scale (and the four blobs of its WITHIN_CHANNEL sub-net), and the copies the
        zoo layers keep for a backward pass (`_backward_copies`)."""
        shapes = netgraph.infer_shapes(self.net.param, {self.input_name: tuple(input_shape)})
        total = sum(math.prod(s) for s in shapes.values())
        for layer in netgraph.deploy_layers(self.net.param):
            if not layer.bottom:
                continue
            bottom, top = shapes[layer.bottom[0]], shapes[layer.top[0]]
            if layer.type == "Convolution":
                w = netgraph.conv_kernel(layer.convolution_param)
                if (w.kernel, w.stride, w.pad) != ((1, 1), (1, 1), (0, 0)):
                    total += bottom[1] * math.prod(w.kernel) * math.prod(top[2:])
            elif layer.type == "Pooling" and layer.pooling_param.pool == \
                    caffe_pb2.PoolingParameter.MAX:
                total += math.prod(top)
            elif layer.type == "LRN":
                across = layer.lrn_param.norm_region == caffe_pb2.LRNParameter.ACROSS_CHANNELS
                total += math.prod(bottom) * (1 if across else 4)
            total += _backward_copies(layer) * math.prod(bottom)
        return total * 4

    def _reshape(self, shape: tuple[int, ...], blobs: list[str]) -> None:
        """Give Caffe a new input size once our shape arithmetic accepted it and it fits in
        memory: Caffe aborts when an allocation fails."""
        if shape not in self._sizes_checked:
            check_input_size(self.net, self.input_name, shape)
            self.check_fits(shape, blobs)
            self._sizes_checked.add(shape)
        if tuple(self._net.blobs[self.input_name].data.shape) != shape:
            self._net.blobs[self.input_name].reshape(*shape)
            self._net.reshape()

    def _forward(self, data: np.ndarray, blobs: list[str]) -> dict[str, np.ndarray]:
        self._reshape(data.shape, blobs)
        self._net.blobs[self.input_name].data[...] = data
        self._net.forward()
        return {b: np.array(self._net.blobs[b].data, dtype=np.float32, copy=True) for b in blobs}
