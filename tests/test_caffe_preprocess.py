"""Our preprocessing and maps against real Caffe's own: `caffe.Classifier.predict` and
`caffe.io.Transformer`, on a small CaffeNet-style colour net with random weights."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("GLOG_minloglevel", "2")      # before libcaffe loads, as the engine does
if os.environ.get("NETSURGERY_REQUIRE_CAFFE"):     # set by CI once `make caffe` succeeded
    import caffe
else:
    caffe = pytest.importorskip("caffe")

from viewer import model_io  # noqa: E402
from viewer.engines.caffe_engine import import_caffe  # noqa: E402
from viewer.featuremap import DenseClassifier  # noqa: E402
from viewer.images import load_image  # noqa: E402
from viewer.preprocess import ModelSettings, Transformer  # noqa: E402
from viewer.surgery import make_fully_convolutional  # noqa: E402

TOLERANCE = 1e-4
MEAN = (104.0, 117.0, 123.0)        # BGR, the net's channel order, as Caffe's ImageNet mean
BGR_MEAN = Transformer(3, (2, 1, 0), 255.0, MEAN)
# CaffeNet's layout (11x11 stride-4 conv1, LRN, grouped conv2, three max pools, fc6-fc8 and
# softmax), with few filters so one pass takes milliseconds, and no padding, so its window is
# its 227 px input.
SMALL_CAFFENET = """
name: "SmallCaffeNet"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 227 dim: 227 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 11 stride: 4 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "norm1" type: "LRN" bottom: "pool1" top: "norm1"
        lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 } }
layer { name: "conv2" type: "Convolution" bottom: "norm1" top: "conv2"
        convolution_param { num_output: 8 kernel_size: 5 group: 2 } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "conv3" type: "Convolution" bottom: "pool2" top: "conv3"
        convolution_param { num_output: 8 kernel_size: 3 } }
layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }
layer { name: "pool5" type: "Pooling" bottom: "conv3" top: "pool5"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "fc6" type: "InnerProduct" bottom: "pool5" top: "fc6"
        inner_product_param { num_output: 32 } }
layer { name: "relu6" type: "ReLU" bottom: "fc6" top: "fc6" }
layer { name: "drop6" type: "Dropout" bottom: "fc6" top: "fc6"
        dropout_param { dropout_ratio: 0.5 } }
layer { name: "fc7" type: "InnerProduct" bottom: "fc6" top: "fc7"
        inner_product_param { num_output: 32 } }
layer { name: "relu7" type: "ReLU" bottom: "fc7" top: "fc7" }
layer { name: "fc8" type: "InnerProduct" bottom: "fc7" top: "fc8"
        inner_product_param { num_output: 20 } }
layer { name: "prob" type: "Softmax" bottom: "fc8" top: "prob" }
"""


def colour_picture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients with noise: red, green and blue differ everywhere, so feeding
    RGB for BGR, or forgetting the mean, changes the classes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:height, :width] / max(height, width)
    rgb = np.stack([220 * x, 200 * y, 120 + 100 * np.sin(6 * x * y)], axis=-1)
    return np.clip(rgb + rng.normal(0, 12, rgb.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def caffenet_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("caffenet")
    param, _ = model_io.parse_prototxt(SMALL_CAFFENET, "small_caffenet.prototxt")
    net = model_io.init_weights(param, seed=5)
    rng = np.random.default_rng(5)
    for blobs in net.weights.values():        # biases too, so a lost one would show
        blobs[1] = rng.normal(0, 0.5, blobs[1].shape).astype(np.float32)
    proto, weights = folder / "small_caffenet.prototxt", folder / "small_caffenet.caffemodel"
    model_io.write_net(net, proto, weights)
    return proto, weights


def picture_file(folder, height: int, width: int):
    path = folder / f"picture_{height}x{width}.png"
    Image.fromarray(colour_picture(height, width)).save(path)
    return path


def test_one_cell_equals_pycaffes_classifier_predict(caffenet_files, tmp_path):
    proto, weights = caffenet_files
    image = picture_file(tmp_path, 227, 227)
    import_caffe()
    classifier = caffe.Classifier(str(proto), str(weights), mean=np.array(MEAN),
                                  channel_swap=(2, 1, 0), raw_scale=255)
    theirs = classifier.predict([caffe.io.load_image(str(image))], oversample=False)[0]
    net = model_io.load_net(proto, weights)
    fm = DenseClassifier(net, None, settings=ModelSettings(BGR_MEAN)).run(load_image(image), 1.0)
    assert fm.probs.shape == (20, 1, 1)
    diff = float(np.abs(fm.probs[:, 0, 0] - theirs).max())
    assert diff < TOLERANCE, f"max |ours - pycaffe| = {diff:.3g}"
    # The check can fail: RGB instead of BGR moves the probabilities far beyond the tolerance.
    rgb = DenseClassifier(net, None, settings=ModelSettings(Transformer(3, (), 255.0, MEAN)))
    assert np.abs(rgb.run(load_image(image), 1.0).probs[:, 0, 0] - theirs).max() > 100 * TOLERANCE


def test_dense_map_equals_pycaffes_fully_convolutional_forward(caffenet_files, tmp_path):
    proto, weights = caffenet_files
    image = picture_file(tmp_path, 454, 454)
    fcn = make_fully_convolutional(model_io.load_net(proto, weights)).net
    fcn_proto, fcn_weights = tmp_path / "fcn.prototxt", tmp_path / "fcn.caffemodel"
    model_io.write_net(fcn, fcn_proto, fcn_weights)
    real = import_caffe().Net(str(fcn_proto), str(fcn_weights), caffe.TEST)
    real.blobs["data"].reshape(1, 3, 454, 454)
    transformer = caffe.io.Transformer({"data": real.blobs["data"].data.shape})
    transformer.set_transpose("data", (2, 0, 1))
    transformer.set_channel_swap("data", (2, 1, 0))
    transformer.set_raw_scale("data", 255)
    transformer.set_mean("data", np.array(MEAN))
    real.blobs["data"].data[...] = transformer.preprocess("data", caffe.io.load_image(str(image)))
    theirs = real.forward()["prob"][0]
    fm = DenseClassifier(fcn, None, settings=ModelSettings(BGR_MEAN)).run(load_image(image), 1.0)
    assert fm.probs.shape == theirs.shape == (20, 8, 8)
    diff = float(np.abs(fm.probs - theirs).max())
    assert diff < TOLERANCE, f"max |ours - pycaffe| = {diff:.3g}"
