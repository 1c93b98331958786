"""SqueezeNet v1.1 (Iandola et al. 2016; the layout of DeepScale's Caffe deploy net) with random
weights: a zoo classifier whose head is a 1x1 convolution and global average pooling, no
InnerProduct. `bench.gui_latency` opens it in the viewer as a user does with Model > Open.
"""
from __future__ import annotations

from pathlib import Path

from bench.zoo import INPUT, _conv, _layer, _pool, _relu
from viewer.caffe import model_io
from viewer.net.weights import init_weights

# (name, squeeze 1x1, expand 1x1 = expand 3x3); "pool": 3x3 max pooling, stride 2
FIRES = [("fire2", 16, 64), ("fire3", 16, 64), "pool3", ("fire4", 32, 128), ("fire5", 32, 128),
         "pool5", ("fire6", 48, 192), ("fire7", 48, 192), ("fire8", 64, 256),
         ("fire9", 64, 256)]


def _fire(name: str, bottom: str, squeeze: int, expand: int) -> str:
    s, e1, e3 = f"{name}/squeeze1x1", f"{name}/expand1x1", f"{name}/expand3x3"
    return (_conv(s, bottom, squeeze, 1) + _relu(f"{name}/relu_squeeze1x1", s) +
            _conv(e1, s, expand, 1) + _relu(f"{name}/relu_expand1x1", e1) +
            _conv(e3, s, expand, 3, p=1) + _relu(f"{name}/relu_expand3x3", e3) +
            _layer(f"{name}/concat", "Concat", [e1, e3], f"{name}/concat"))


def squeezenet() -> str:
    """The deploy prototxt: 224x224 colour input, 1000 classes."""
    text = INPUT.format(name="SqueezeNet_v1.1")
    text += _conv("conv1", "data", 64, 3, s=2) + _relu("relu_conv1", "conv1")
    text += _pool("pool1", "conv1", "MAX", 3, 2)
    bottom = "pool1"
    for fire in FIRES:
        if isinstance(fire, str):
            text += _pool(fire, bottom, "MAX", 3, 2)
            bottom = fire
        else:
            text += _fire(fire[0], bottom, fire[1], fire[2])
            bottom = f"{fire[0]}/concat"
    text += _layer("drop9", "Dropout", [bottom], bottom, "dropout_param { dropout_ratio: 0.5 } ")
    text += _conv("conv10", bottom, 1000, 1) + _relu("relu_conv10", "conv10")
    text += _layer("pool10", "Pooling", ["conv10"], "pool10",
                   "pooling_param { pool: AVE global_pooling: true } ")
    text += _layer("prob", "Softmax", ["pool10"], "prob")
    return text


def write_squeezenet(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """The prototxt and a caffemodel of random weights in `folder`."""
    param, _ = model_io.parse_prototxt(squeezenet(), "squeezenet.prototxt")
    files = (Path(folder) / "squeezenet.prototxt", Path(folder) / "squeezenet.caffemodel")
    model_io.write_net(init_weights(param, seed), *files)
    return files
