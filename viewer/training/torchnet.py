"""A PyTorch module built from a Caffe deploy net, and its weights back as a `CaffeNet`.

The module follows the NetParameter layer by layer and blob by blob, with Caffe's conventions:
weights in Caffe's layout (out, in, kh, kw) and (out, in), max pooling rounded up
(`ceil_mode=True`), InnerProduct flattening from axis 1. So the export is a plain copy of arrays.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from viewer.net import netgraph
from viewer.caffe.model_io import CaffeNet, structure_of
from viewer.caffe.proto import caffe_pb2
from viewer.errors import TrainingError


class Power(nn.Module):
    """Caffe's Power layer: (shift + scale * x) ** power."""

    def __init__(self, p: caffe_pb2.PowerParameter) -> None:
        super().__init__()
        self.power, self.scale, self.shift = p.power, p.scale, p.shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * self.scale + self.shift if (self.scale != 1 or self.shift) else x
        return y if self.power == 1 else y ** self.power


class BatchNorm(nn.Module):
    """Caffe's BatchNorm: batch statistics in training, the running ones in eval.

    Caffe keeps sums weighted by `moving_average_fraction` and a factor s; torch's running
    mean with momentum 1 - fraction is the same average without the start-up bias, so the
    export writes it with s = 1. No affine part: Caffe puts that in the Scale layer after it."""

    def __init__(self, p: caffe_pb2.BatchNormParameter, channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, eps=p.eps, momentum=1.0 - p.moving_average_fraction,
                                   affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)

    def caffe_blobs(self) -> list[np.ndarray]:
        return [self.norm.running_mean.detach().numpy().astype(np.float32).copy(),
                self.norm.running_var.detach().numpy().astype(np.float32).copy(),
                np.ones(1, np.float32)]

    def load_blobs(self, blobs: list[np.ndarray]) -> None:
        s = float(blobs[2].reshape(-1)[0]) if len(blobs) > 2 else 1.0
        s = 0.0 if s == 0 else 1.0 / s                     # Caffe: a factor of 0 means 0
        with torch.no_grad():
            self.norm.running_mean.copy_(torch.from_numpy(blobs[0].reshape(-1) * s))
            self.norm.running_var.copy_(torch.from_numpy(blobs[1].reshape(-1) * s))


class Scale(nn.Module):
    """Caffe's Scale with one learned factor (and bias) per channel (axis 1)."""

    def __init__(self, p: caffe_pb2.ScaleParameter, channels: int) -> None:
        super().__init__()
        if p.axis != 1 or p.num_axes != 1:
            raise TrainingError("only a per-channel Scale (axis 1, num_axes 1) trains here")
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if p.bias_term else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        y = x * self.weight.view(shape)
        return y + self.bias.view(shape) if self.bias is not None else y


class Flatten1(nn.Module):
    """InnerProduct's implicit flattening of everything after the batch axis."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def _module(layer: caffe_pb2.LayerParameter, bottom: netgraph.Shape) -> nn.Module:
    """The torch module of one deploy layer whose input has Caffe shape `bottom`."""
    if layer.type == "Convolution":
        p, w = layer.convolution_param, netgraph.conv_kernel(layer.convolution_param)
        return nn.Conv2d(bottom[1], p.num_output, w.kernel, w.stride, w.pad, w.dilation,
                         groups=p.group or 1, bias=p.bias_term)
    if layer.type == "Pooling":
        p = layer.pooling_param
        if p.pool != caffe_pb2.PoolingParameter.MAX or p.global_pooling:
            raise TrainingError(f"Pooling layer '{layer.name}': only MAX pooling trains here")
        w = netgraph.pool_kernel(p, bottom)
        return nn.MaxPool2d(w.kernel, w.stride, w.pad, ceil_mode=True)
    if layer.type == "InnerProduct":
        p = layer.inner_product_param
        if p.transpose or (p.HasField("axis") and p.axis != 1):
            raise TrainingError(f"InnerProduct '{layer.name}': only axis 1, untransposed, trains")
        return nn.Sequential(Flatten1(), nn.Linear(int(np.prod(bottom[1:])), p.num_output,
                                                   bias=p.bias_term))
    if layer.type == "ReLU":
        slope = layer.relu_param.negative_slope
        return nn.LeakyReLU(slope) if slope else nn.ReLU()
    if layer.type == "Dropout":
        return nn.Dropout(layer.dropout_param.dropout_ratio)
    if layer.type == "Power":
        return Power(layer.power_param)
    if layer.type == "BatchNorm":
        return BatchNorm(layer.batch_norm_param, bottom[1])
    if layer.type == "Scale":
        return Scale(layer.scale_param, bottom[1])
    raise TrainingError(f"layer '{layer.name}' of type {layer.type} cannot be trained here; "
                        "use Convolution, Pooling (MAX), InnerProduct, ReLU, Dropout, Power, "
                        "BatchNorm, Scale")


def _learnable(module: nn.Module) -> nn.Module | None:
    """The Conv2d or Linear inside a layer's module, if it has weights."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, Scale)):
            return m
    return None


class CaffeTorchNet(nn.Module):
    """A deploy NetParameter run by PyTorch; `forward` returns the score blob."""

    def __init__(self, deploy: caffe_pb2.NetParameter) -> None:
        super().__init__()
        self.param = structure_of(deploy)
        shapes = netgraph.infer_shapes(deploy)
        self.input_blob = next(iter(netgraph.input_shapes(deploy)))
        self.score_blob = netgraph.score_blob(deploy)
        self.steps: list[tuple[str, str, str]] = []   # (layer, bottom, top)
        self.layers = nn.ModuleDict()
        for layer in netgraph.deploy_layers(deploy):
            if layer.type in ("Input", "Softmax"):
                continue
            if len(layer.bottom) != 1 or len(layer.top) != 1:
                raise TrainingError(f"layer '{layer.name}' has {len(layer.bottom)} inputs and "
                                    f"{len(layer.top)} outputs; only chains train here")
            self.layers[layer.name] = _module(layer, shapes[layer.bottom[0]])
            self.steps.append((layer.name, layer.bottom[0], layer.top[0]))

    def blobs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every blob of a forward pass, in-place layers overwriting their blob as in Caffe."""
        out = {self.input_blob: x}
        for name, bottom, top in self.steps:
            out[top] = self.layers[name](out[bottom])
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blobs(x)[self.score_blob]

    def learnable(self) -> dict[str, nn.Module]:
        """Layer name -> its Conv2d or Linear, in net order."""
        found = {name: _learnable(self.layers[name]) for name, _, _ in self.steps}
        return {k: m for k, m in found.items() if m is not None}

    def statistics(self) -> dict[str, BatchNorm]:
        """Layer name -> its BatchNorm, whose blobs are running statistics, not weights."""
        return {name: self.layers[name] for name, _, _ in self.steps
                if isinstance(self.layers[name], BatchNorm)}

    def load_caffe(self, net: CaffeNet) -> None:
        """Copy a CaffeNet's weights in (a Caffe initialisation or a model to fine-tune)."""
        for name, norm in self.statistics().items():
            if name not in net.weights:
                raise TrainingError(f"{net.source} has no statistics for layer '{name}'")
            norm.load_blobs(net.weights[name])
        for name, m in self.learnable().items():
            blobs = net.weights.get(name)
            if blobs is None:
                raise TrainingError(f"{net.source} has no weights for layer '{name}'")
            with torch.no_grad():
                for tensor, array in zip((m.weight, m.bias), blobs):
                    if tuple(array.shape) != tuple(tensor.shape):
                        raise TrainingError(f"layer '{name}': {net.source} holds {array.shape}, "
                                            f"the net needs {tuple(tensor.shape)}")
                    tensor.copy_(torch.from_numpy(np.ascontiguousarray(array)))

    def to_caffe(self, source: str = "<trained>") -> CaffeNet:
        """The deploy net with this module's current weights."""
        weights = {}
        for name, m in self.learnable().items():
            blobs = [m.weight] + ([m.bias] if m.bias is not None else [])
            weights[name] = [b.detach().cpu().numpy().astype(np.float32).copy() for b in blobs]
        for name, norm in self.statistics().items():
            weights[name] = norm.caffe_blobs()
        weights = {layer.name: weights[layer.name] for layer in self.param.layer
                   if layer.name in weights}                  # in net order, as Caffe writes
        return CaffeNet(structure_of(self.param), weights, source=source)
