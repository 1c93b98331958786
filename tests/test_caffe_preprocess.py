"""Our preprocessing and maps against real Caffe's own: `caffe.Classifier.predict` and
`caffe.io.Transformer`, on the gallery's CaffeNet-style colour net with random weights."""
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

import gallery  # noqa: E402
from viewer.net.weights import load_net
from viewer.caffe import model_io  # noqa: E402
from viewer.engines.caffe_engine import import_caffe  # noqa: E402
from viewer.maps.featuremap import DenseClassifier  # noqa: E402
from viewer.maps.images import load_image  # noqa: E402
from viewer.maps.preprocess import ModelSettings, Transformer  # noqa: E402
from viewer.surgery.convolutional import make_fully_convolutional  # noqa: E402

TOLERANCE = 1e-4
MEAN = (104.0, 117.0, 123.0)        # BGR, the net's channel order, as Caffe's ImageNet mean
BGR_MEAN = Transformer(3, (2, 1, 0), 255.0, MEAN)


def colour_picture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients with noise: red, green and blue differ everywhere, so feeding
    RGB for BGR, or forgetting the mean, changes the classes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:height, :width] / max(height, width)
    rgb = np.stack([220 * x, 200 * y, 120 + 100 * np.sin(6 * x * y)], axis=-1)
    return np.clip(rgb + rng.normal(0, 12, rgb.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def caffenet_files(tmp_path_factory):
    """The gallery's CaffeNet-style net (227 px window, padded, 10 classes) written to disk."""
    folder = tmp_path_factory.mktemp("caffenet")
    proto, weights = folder / "caffenet_style.prototxt", folder / "caffenet_style.caffemodel"
    model_io.write_net(gallery.load("caffenet_style", seed=5), proto, weights)
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
    net = load_net(proto, weights)
    fm = DenseClassifier(net, None, settings=ModelSettings(BGR_MEAN)).run(load_image(image), 1.0)
    assert fm.probs.shape == (10, 1, 1)
    diff = float(np.abs(fm.probs[:, 0, 0] - theirs).max())
    assert diff < TOLERANCE, f"max |ours - pycaffe| = {diff:.3g}"
    # The check can fail: RGB instead of BGR moves the probabilities far beyond the tolerance.
    rgb = DenseClassifier(net, None, settings=ModelSettings(Transformer(3, (), 255.0, MEAN)))
    assert np.abs(rgb.run(load_image(image), 1.0).probs[:, 0, 0] - theirs).max() > 100 * TOLERANCE


def test_dense_map_equals_pycaffes_fully_convolutional_forward(caffenet_files, tmp_path):
    proto, weights = caffenet_files
    image = picture_file(tmp_path, 454, 454)
    fcn = make_fully_convolutional(load_net(proto, weights)).net
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
    assert fm.probs.shape == theirs.shape == (10, 8, 8)
    diff = float(np.abs(fm.probs - theirs).max())
    assert diff < TOLERANCE, f"max |ours - pycaffe| = {diff:.3g}"
