"""The Caffe side of training: the deploy LeNet, the train/test net derived from it, the solver.

One deploy net is the source of truth. It takes raw 0-255 pixels and scales them with a leading
Power layer, so every engine sees the same numbers. The train/test net is derived from it: its
Data layers read the LMDB and scale with `transform_param { scale }` instead, the Power layer is
dropped and the first layer reads the Data top directly. Both nets then feed identical values to
`conv1`, so weights trained by real Caffe from `lenet_train_test.prototxt` go unchanged into the
deploy net, and ours go unchanged into Caffe.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from google.protobuf import text_format

from viewer.net import netgraph
from viewer.maps.labels import CHARACTERS
from viewer.caffe.model_io import parse_prototxt
from viewer.caffe.proto import caffe_pb2
from viewer.errors import TrainingError

LEARNABLE = {"Convolution", "InnerProduct"}
TRAINED = LEARNABLE | {"Scale"}        # layers whose blobs SGD updates (BatchNorm's it does not)
LR_POLICIES = ("poly", "inv", "fixed")
DEFAULT_POWER = {"poly": 1.0, "inv": 0.75, "fixed": 1.0}  # inv's is the LeNet example's
DEFAULT_EPOCHS = 8.0  # over 540k windows: 67,500 iterations, `make model` near 17 min on 2 cores
BNNET_EPOCHS = 4.0    # BatchNorm learns in fewer passes; each costs about 2x LeNet's

LENET_DEPLOY = """
name: "LeNet"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 1 dim: 28 dim: 28 } } }
layer { name: "scale" type: "Power" bottom: "data" top: "scaled"
        power_param { scale: 0.00390625 } }
layer { name: "conv1" type: "Convolution" bottom: "scaled" top: "conv1"
        convolution_param { num_output: 20 kernel_size: 5 stride: 1 } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 50 kernel_size: 5 stride: 1 } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "dropout" type: "Dropout" bottom: "pool2" top: "dropout"
        dropout_param { dropout_ratio: 0.2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "dropout" top: "ip1"
        inner_product_param { num_output: 500 } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2-alpha" type: "InnerProduct" bottom: "ip1" top: "ip2-alpha"
        inner_product_param { num_output: NUM_OUTPUTS } }
"""


# The second plate net: same 28x28 window and 4-pixel stride as LeNet, so the reader's scales
# and the map's geometry are unchanged, but three convolutions with BatchNorm and ReLU, wider.
# No padding anywhere: a padded window would see zeros its dense twin sees as neighbours, and
# surgery would no longer be exact. Measured on the sample's dense pass: see models/README.md.
BNNET_DEPLOY = """
name: "BNNet"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 1 dim: 28 dim: 28 } } }
layer { name: "scale" type: "Power" bottom: "data" top: "scaled"
        power_param { scale: 0.00390625 } }
BLOCKS
layer { name: "dropout" type: "Dropout" bottom: "pool2" top: "dropout"
        dropout_param { dropout_ratio: 0.2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "dropout" top: "ip1"
        inner_product_param { num_output: 256 } }
layer { name: "relu_ip1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2-alpha" type: "InnerProduct" bottom: "ip1" top: "ip2-alpha"
        inner_product_param { num_output: NUM_OUTPUTS } }
"""
BNNET_BLOCK = """
layer { name: "NAME" type: "Convolution" bottom: "BOTTOM" top: "NAME"
        convolution_param { num_output: WIDTH kernel_size: KERNEL bias_term: false } }
layer { name: "NAME_bn" type: "BatchNorm" bottom: "NAME" top: "NAME" }
layer { name: "NAME_scale" type: "Scale" bottom: "NAME" top: "NAME"
        scale_param { bias_term: true } }
layer { name: "NAME_relu" type: "ReLU" bottom: "NAME" top: "NAME" }
"""
BNNET_POOL = """
layer { name: "NAME" type: "Pooling" bottom: "BOTTOM" top: "NAME"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
"""
# (conv name, its input, width, kernel), with a 2x2 pool after conv1 and conv3: 28 -> 24 -> 12
# -> 10 -> 8 -> 4, as LeNet's 28 -> 24 -> 12 -> 8 -> 4.
BNNET_CONVS = (("conv1", "scaled", 32, 5), ("conv2", "pool1", 64, 3), ("conv3", "conv2", 64, 3))


def lenet_deploy(num_outputs: int = len(CHARACTERS) + 1) -> caffe_pb2.NetParameter:
    """The tutorial's LeNet as a deploy net with `num_outputs` classes (37: A-Z, 0-9, background)."""
    param, _ = parse_prototxt(LENET_DEPLOY.replace("NUM_OUTPUTS", str(num_outputs)), "LeNet")
    return param


def bnnet_deploy(num_outputs: int = len(CHARACTERS) + 1) -> caffe_pb2.NetParameter:
    """The stronger plate net (BatchNorm, three convolutions) with `num_outputs` classes."""
    blocks = []
    for name, bottom, width, kernel in BNNET_CONVS:
        blocks.append(BNNET_BLOCK.replace("NAME", name).replace("BOTTOM", bottom)
                      .replace("WIDTH", str(width)).replace("KERNEL", str(kernel)))
        if name in ("conv1", "conv3"):
            pool = "pool1" if name == "conv1" else "pool2"
            blocks.append(BNNET_POOL.replace("NAME", pool).replace("BOTTOM", name))
    text = BNNET_DEPLOY.replace("BLOCKS", "".join(blocks))
    param, _ = parse_prototxt(text.replace("NUM_OUTPUTS", str(num_outputs)), "BNNet")
    return param


@dataclass(frozen=True)
class Architecture:
    """A plate net `main.py train` can train: its deploy net and the names of its files."""

    name: str                     # what --arch and `read --model` call it
    model_name: str               # the stem of its files in models/
    deploy: Callable[[], caffe_pb2.NetParameter]
    epochs: float                 # the default length of a run

    @property
    def train_test_name(self) -> str:
        return f"{self.name}_train_test.prototxt"

    @property
    def solver_name(self) -> str:
        return f"{self.name}_solver.prototxt"


ARCHITECTURES = {
    "lenet": Architecture("lenet", "lenet_plates", lenet_deploy, DEFAULT_EPOCHS),
    "bnnet": Architecture("bnnet", "bnnet_plates", bnnet_deploy, BNNET_EPOCHS),
}


@dataclass(frozen=True)
class SolverSettings:
    """Caffe's SGD solver as `lenet_solver.prototxt` states it; the PyTorch run follows it."""

    max_iter: int = 10000
    batch_size: int = 64
    test_batch_size: int = 500
    base_lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0005
    lr_policy: str = "poly"
    gamma: float = 0.0001            # inv only
    power: float = 1.0
    test_interval: int = 1000
    display: int = 100
    seed: int = 0

    def learning_rate(self, iteration: int) -> float:
        """The global rate at `iteration`, by Caffe's `inv`, `poly` or `fixed` policy."""
        if self.lr_policy == "fixed":
            return self.base_lr
        if self.lr_policy == "inv":
            return self.base_lr * (1.0 + self.gamma * iteration) ** (-self.power)
        if self.lr_policy == "poly":
            return self.base_lr * (1.0 - iteration / self.max_iter) ** self.power
        raise TrainingError(f"lr_policy '{self.lr_policy}' is not supported; use "
                            f"{', '.join(LR_POLICIES)}")


@dataclass(frozen=True)
class TrainingOptions:
    """What a training run is asked for, before the training set is read.

    A length in epochs becomes iterations only once the number of training windows is known,
    and the test interval, display period and policy power follow from the iterations, so the
    solver's settings are made from these by `settings` when the dataset is open.
    """

    iters: int | None              # SGD iterations, or None to count them from `epochs`
    epochs: float | None           # passes over the training set (DEFAULT_EPOCHS when neither)
    batch_size: int
    base_lr: float
    lr_policy: str
    lr_power: float | None         # None: DEFAULT_POWER of the policy
    test_interval: int | None      # None: a tenth of the run
    seed: int

    def settings(self, train_count: int, epochs: float = DEFAULT_EPOCHS) -> SolverSettings:
        """Solver settings; the epochs (`epochs`, the architecture's, unless given) become a
        whole number of iterations over `train_count`."""
        if self.iters is not None:
            iters = self.iters
        else:
            iters = math.ceil((self.epochs or epochs) * train_count / self.batch_size)
        if iters < 1:
            raise TrainingError("train for at least one iteration (--iters or --epochs)")
        interval = self.test_interval if self.test_interval is not None else max(1, iters // 10)
        power = self.lr_power if self.lr_power is not None else DEFAULT_POWER[self.lr_policy]
        return SolverSettings(max_iter=iters, batch_size=self.batch_size, base_lr=self.base_lr,
                              lr_policy=self.lr_policy, power=power, test_interval=interval,
                              display=max(1, min(100, iters // 20)), seed=self.seed)


@dataclass(frozen=True)
class InputScaling:
    """How the deploy net turns raw pixels into what its first layer reads."""

    input_blob: str
    first_blob: str       # the blob the first real layer reads (the Power top, or the input)
    scale: float
    mean: float           # Caffe's transform subtracts it before scaling
    power_layer: str | None


def input_scaling(deploy: caffe_pb2.NetParameter) -> InputScaling:
    """Find the deploy net's leading Power layer and express it as a Caffe data transform."""
    input_blob = next(iter(netgraph.input_shapes(deploy)))
    readers = [l for l in netgraph.deploy_layers(deploy) if input_blob in l.bottom]
    if len(readers) == 1 and readers[0].type == "Power":
        power = readers[0]
        p = power.power_param
        if p.power != 1.0 or p.scale == 0:
            raise TrainingError(f"Power layer '{power.name}' has power {p.power:g} and scale "
                                f"{p.scale:g}; only a linear scaling becomes a data transform")
        return InputScaling(input_blob, power.top[0], p.scale, -p.shift / p.scale, power.name)
    return InputScaling(input_blob, input_blob, 1.0, 0.0, None)


def _data_layer(phase: int, source: str, batch_size: int, top: str,
                scaling: InputScaling) -> caffe_pb2.LayerParameter:
    layer = caffe_pb2.LayerParameter(name=top, type="Data", top=[top, "label"])
    layer.include.add(phase=phase)
    if scaling.scale != 1.0:
        layer.transform_param.scale = scaling.scale
    if scaling.mean:
        layer.transform_param.mean_value.append(scaling.mean)
    layer.data_param.source = source
    layer.data_param.batch_size = batch_size
    layer.data_param.backend = caffe_pb2.DataParameter.LMDB
    return layer


def _with_solver_params(layer: caffe_pb2.LayerParameter) -> caffe_pb2.LayerParameter:
    """A learnable layer with the LeNet example's fillers and lr multipliers (bias learns 2x);
    a Scale keeps Caffe's own (gamma 1, beta 0, both at the base rate)."""
    out = caffe_pb2.LayerParameter()
    out.CopyFrom(layer)
    if out.type == "Scale":
        return out
    del out.param[:]
    p = out.convolution_param if out.type == "Convolution" else out.inner_product_param
    out.param.add(lr_mult=1)
    p.weight_filler.type = "xavier"
    if p.bias_term:                    # Caffe refuses a ParamSpec for a blob a layer lacks
        out.param.add(lr_mult=2)
        p.bias_filler.type = "constant"
    return out


def train_test_net(deploy: caffe_pb2.NetParameter, train_source: str, test_source: str,
                   batch_size: int, test_batch_size: int) -> caffe_pb2.NetParameter:
    """The train/test net of `deploy`: LMDB Data layers, its layers, SoftmaxWithLoss, Accuracy.

    The deploy's input scaling moves into the Data layers' transform (see the module doc).
    """
    scaling = input_scaling(deploy)
    score = netgraph.score_blob(deploy)
    net = caffe_pb2.NetParameter(name=deploy.name)
    net.layer.append(_data_layer(caffe_pb2.TRAIN, train_source, batch_size,
                                 scaling.input_blob, scaling))
    net.layer.append(_data_layer(caffe_pb2.TEST, test_source, test_batch_size,
                                 scaling.input_blob, scaling))
    for layer in netgraph.deploy_layers(deploy):
        if layer.type in ("Input", "Softmax") or layer.name == scaling.power_layer:
            continue
        copy = caffe_pb2.LayerParameter()
        copy.CopyFrom(_with_solver_params(layer) if layer.type in TRAINED else layer)
        renamed = [scaling.input_blob if b == scaling.first_blob else b for b in copy.bottom]
        del copy.bottom[:]
        copy.bottom.extend(renamed)
        net.layer.append(copy)
    net.layer.add(name="loss", type="SoftmaxWithLoss", bottom=[score, "label"], top=["loss"])
    accuracy = net.layer.add(name="accuracy", type="Accuracy", bottom=[score, "label"],
                             top=["accuracy"])
    accuracy.include.add(phase=caffe_pb2.TEST)
    return net


def solver(settings: SolverSettings, net_path: str, test_count: int,
           snapshot_prefix: str) -> caffe_pb2.SolverParameter:
    """The Caffe solver that runs `settings` on the train/test net at `net_path`."""
    s = settings
    param = caffe_pb2.SolverParameter(
        net=net_path, test_iter=[max(1, -(-test_count // s.test_batch_size))],
        test_interval=s.test_interval, base_lr=s.base_lr, momentum=s.momentum,
        weight_decay=s.weight_decay, lr_policy=s.lr_policy, power=s.power,
        display=s.display, max_iter=s.max_iter, snapshot=s.max_iter,
        snapshot_prefix=snapshot_prefix, solver_mode=caffe_pb2.SolverParameter.CPU,
        random_seed=s.seed, type="SGD")
    if s.lr_policy == "inv":
        param.gamma = s.gamma
    return param


def solver_text(param: caffe_pb2.SolverParameter) -> str:
    """Text format of a solver, as Caffe reads it."""
    return text_format.MessageToString(param)


def lr_multipliers(train_test: caffe_pb2.NetParameter) -> dict[str, list[tuple[float, float]]]:
    """Per learnable layer, (lr_mult, decay_mult) of each blob, Caffe's defaults filled in."""
    out = {}
    for layer in train_test.layer:
        if layer.type in TRAINED:
            specs = list(layer.param) + [caffe_pb2.ParamSpec()] * (2 - len(layer.param))
            out[layer.name] = [(s.lr_mult, s.decay_mult) for s in specs[:2]]
    return out
