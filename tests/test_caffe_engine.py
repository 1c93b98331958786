"""Real Caffe (pycaffe, built by `make caffe`) as the judge: of our engines and of our files.

The caffe engine must give the numbers the other engines give. Caffe reading what our writer
wrote, and our reader reading what Caffe wrote, checks the file format in both directions; a
bad net or input size must come out as a `ModelError`, never as Caffe aborting the process.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

os.environ.setdefault("GLOG_minloglevel", "2")      # before libcaffe loads, as the engine does
if os.environ.get("NETSURGERY_REQUIRE_CAFFE"):     # set by CI once `make caffe` succeeded
    import caffe
else:
    caffe = pytest.importorskip("caffe")

from conftest import plate_like  # noqa: E402
from viewer.net.weights import init_weights, load_net
from viewer import surgery  # noqa: E402
from viewer.caffe import model_io
from viewer.files import paths
from viewer.cli import main as cli_main  # noqa: E402
from viewer.engines import create_engine  # noqa: E402
from viewer.engines.caffe_engine import import_caffe  # noqa: E402
from viewer.engines.ops import softmax  # noqa: E402
from viewer.maps.featuremap import DenseClassifier  # noqa: E402
from viewer.caffe.proto import caffe_pb2  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-4
# Odd sizes make LeNet's ceil-rounded pooling clip its last window.
SIZES = [(28, 28), (29, 31), (35, 61), (47, 30), (60, 121)]


def _plate(height: int, width: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    image = plate_like(height, width, seed).astype(np.float32)
    return np.repeat(image[None, None], channels, axis=1)


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, f"shape {a.shape} != {b.shape}"
    return float(np.abs(a - b).max())


@pytest.fixture
def lenet_fcn(lenet):
    return surgery.make_fully_convolutional(lenet).net


@pytest.mark.parametrize("size", SIZES)
def test_lenet_probabilities_equal_numpy_and_opencv(lenet_fcn, size):
    data = _plate(*size, seed=size[1])
    blobs = ["conv1", "ip1-conv", "ip2-alpha-conv"]
    real = create_engine("caffe", lenet_fcn).forward(data, blobs)
    for other in ("numpy", "opencv"):
        out = create_engine(other, lenet_fcn).forward(data, blobs)
        probs = _max_diff(softmax(real["ip2-alpha-conv"]), softmax(out["ip2-alpha-conv"]))
        assert probs < TOLERANCE, f"caffe vs {other} probabilities at {size}: {probs:.3g}"
        assert _max_diff(real["conv1"], out["conv1"]) < TOLERANCE, f"conv1 vs {other}"
        assert _max_diff(real["ip1-conv"], out["ip1-conv"]) < TOLERANCE, f"ip1-conv vs {other}"


def test_in_place_relu_blob_is_the_relu_output(lenet_fcn):
    out = create_engine("caffe", lenet_fcn).forward(_plate(45, 61), ["ip1-conv"])["ip1-conv"]
    assert out.min() == 0.0 and (out > 0).any()


def test_classifier_of_another_shape_equals_numpy_and_opencv(other_net):
    """Padding, AVE pooling with ceil rounding, LRN, groups, Flatten, two InnerProducts."""
    data = np.random.default_rng(4).uniform(0, 255, (3, 3, 32, 32)).astype(np.float32)
    blobs = ["conv_a", "pool_a", "conv_b", "norm_b", "pool_b", "flat", "fc1", "prob"]
    real = create_engine("caffe", other_net).forward(data, blobs)
    for other in ("numpy", "opencv"):
        out = create_engine(other, other_net).forward(data, blobs)
        for blob in blobs:
            scale = max(1.0, float(np.abs(real[blob]).max()))
            assert _max_diff(real[blob], out[blob]) / scale < TOLERANCE, f"{blob} vs {other}"


@pytest.mark.parametrize("net_name", ["lenet", "other_net"])
def test_surgery_verification_in_caffe_is_exact(net_name, request):
    classifier = request.getfixturevalue(net_name)
    fcn = surgery.make_fully_convolutional(classifier).net
    check = surgery.verify_equivalence(classifier, fcn, count=4, engine="caffe")
    assert check.engine == "caffe" and check.inputs == 8
    assert check.max_abs_diff < 1e-5


def test_dense_map_equals_opencv(lenet):
    image = plate_like(57, 89, seed=1)
    real = DenseClassifier(lenet, "caffe").run(image, 1.3)
    ref = DenseClassifier(lenet, "opencv").run(image, 1.3)
    assert real.geometry == ref.geometry
    assert real.labels == ref.labels
    assert _max_diff(real.probs, ref.probs) < TOLERANCE
    assert _max_diff(real.conv1, ref.conv1) < TOLERANCE


def test_bundled_trained_model_equals_opencv_on_the_sample_plate():
    from viewer.maps.images import load_image

    net = load_net(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS)
    image = load_image(paths.SAMPLE_PLATE)
    real = DenseClassifier(net, "caffe").run(image, 1.0)
    ref = DenseClassifier(net, "opencv").run(image, 1.0)
    assert _max_diff(real.probs, ref.probs) < TOLERANCE
    assert (real.best()[0] == ref.best()[0]).mean() > 0.999


def _caffe_params(net) -> dict[str, list[np.ndarray]]:
    return {name: [b.data.copy() for b in blobs] for name, blobs in net.params.items()}


def test_caffe_loads_what_our_surgery_command_writes(lenet_files, tmp_path):
    proto, weights = lenet_files
    assert cli_main(["surgery", "--prototxt", str(proto), "--weights", str(weights),
                     "--out", str(tmp_path), "--engine", "caffe"]) == 0
    fcn_proto, fcn_weights = tmp_path / "lenet_fullconv.prototxt", \
        tmp_path / "lenet_fullconv.caffemodel"
    ours = load_net(fcn_proto, fcn_weights)
    real = import_caffe().Net(str(fcn_proto), str(fcn_weights), caffe.TEST)
    theirs = _caffe_params(real)
    assert set(theirs) == set(ours.weights) == {"conv1", "conv2", "ip1-conv", "ip2-alpha-conv"}
    for name, arrays in ours.weights.items():
        assert len(theirs[name]) == len(arrays)
        for a, b in zip(theirs[name], arrays):
            np.testing.assert_array_equal(a, b)


def test_our_reader_loads_what_caffe_saves(tmp_path, other_net):
    """A net built by Caffe from our prototxt, filled by numpy, written by `net.save()`."""
    proto = tmp_path / "other.prototxt"
    proto.write_text(model_io.prototxt_text(other_net.param))
    real = import_caffe().Net(str(proto), caffe.TEST)
    rng = np.random.default_rng(8)
    for blobs in real.params.values():
        for blob in blobs:
            blob.data[...] = rng.normal(0, 1, blob.data.shape)
    saved = tmp_path / "saved_by_caffe.caffemodel"
    real.save(str(saved))
    ours = load_net(proto, saved)
    theirs = _caffe_params(real)
    assert set(ours.weights) == set(theirs)
    for name, arrays in theirs.items():
        for a, b in zip(arrays, ours.weights[name]):
            assert a.shape == b.shape
            np.testing.assert_array_equal(a, b)
    data = np.random.default_rng(1).uniform(0, 255, (2, 3, 32, 32)).astype(np.float32)
    real.blobs["image"].reshape(*data.shape)
    real.blobs["image"].data[...] = data
    expected = real.forward()["prob"]
    assert _max_diff(create_engine("numpy", ours).forward(data, ["prob"])["prob"],
                     expected) < 1e-6


V1_LENET = """
name: "LeNetV1"
input: "data"
input_dim: 1 input_dim: 1 input_dim: 28 input_dim: 28
layers { name: "scale" type: POWER bottom: "data" top: "scaled"
         power_param { scale: 0.00390625 } }
layers { name: "conv1" type: CONVOLUTION bottom: "scaled" top: "conv1"
         convolution_param { num_output: 20 kernel_size: 5 } }
layers { name: "pool1" type: POOLING bottom: "conv1" top: "pool1"
         pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { name: "conv2" type: CONVOLUTION bottom: "pool1" top: "conv2"
         convolution_param { num_output: 50 kernel_size: 5 } }
layers { name: "pool2" type: POOLING bottom: "conv2" top: "pool2"
         pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { name: "ip1" type: INNER_PRODUCT bottom: "pool2" top: "ip1"
         inner_product_param { num_output: 500 } }
layers { name: "relu1" type: RELU bottom: "ip1" top: "ip1" }
layers { name: "ip2" type: INNER_PRODUCT bottom: "ip1" top: "ip2"
         inner_product_param { num_output: 36 } }
layers { name: "prob" type: SOFTMAX bottom: "ip2" top: "prob" }
"""


def test_old_format_model_is_upgraded_as_caffe_upgrades_it(tmp_path):
    """A pre-2015 `layers {}` model with legacy 4-D blobs: Caffe upgrades it when it loads it
    (`UpgradeNetAsNeeded`, the code of its upgrade tools); our reader must agree."""
    param, _ = model_io.parse_prototxt(V1_LENET, "v1")
    net = init_weights(param, seed=2)
    old = text_format.Parse(V1_LENET, caffe_pb2.NetParameter())
    for v1 in old.layers:
        for blob in net.weights.get(v1.name, []):
            shape = (1,) * (4 - blob.ndim) + blob.shape
            v1.blobs.add(num=shape[0], channels=shape[1], height=shape[2], width=shape[3],
                         data=blob.ravel().tolist())
    proto, weights = tmp_path / "v1.prototxt", tmp_path / "v1.caffemodel"
    proto.write_text(V1_LENET)
    weights.write_bytes(old.SerializeToString())
    ours = load_net(proto, weights)
    real = import_caffe().Net(str(proto), str(weights), caffe.TEST)
    for name, arrays in _caffe_params(real).items():
        for a, b in zip(arrays, ours.weights[name]):
            np.testing.assert_array_equal(a, b)
    data = _plate(28, 28)
    real.blobs["data"].data[...] = data
    expected = real.forward()["prob"]
    assert _max_diff(create_engine("numpy", ours).forward(data, ["prob"])["prob"],
                     expected) < 1e-6
    resaved = tmp_path / "upgraded_by_caffe.caffemodel"
    real.save(str(resaved))
    assert not model_io.read_caffemodel(resaved).layers, "Caffe writes the new format"
    again = load_net(proto, resaved)
    for name, arrays in ours.weights.items():
        for a, b in zip(arrays, again.weights[name]):
            np.testing.assert_array_equal(a, b)


# Each of these would be a glog CHECK failure that aborts the process inside Caffe. They run in
# a child process so that a missing guard fails this test instead of killing the test session.
BAD_CASES = r'''
import numpy as np
from viewer import surgery
from viewer.caffe import model_io
from viewer.net.weights import init_weights, load_net
from viewer.files import paths
from viewer.engines import create_engine
from viewer.errors import ViewerError

def net_of(text):
    param, _ = model_io.parse_prototxt(text, "bad.prototxt")
    return init_weights(param, seed=0)

HEAD = """input: "data" input_dim: 1 input_dim: 4 input_dim: 16 input_dim: 16
"""
CASES = {
    "groups": HEAD + """layer { name: "c" type: "Convolution" bottom: "data" top: "c"
        convolution_param { num_output: 5 kernel_size: 3 group: 2 } }""",
    "lrn_even": HEAD + """layer { name: "n" type: "LRN" bottom: "data" top: "n"
        lrn_param { local_size: 4 } }""",
    "pool_pad": HEAD + """layer { name: "p" type: "Pooling" bottom: "data" top: "p"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 pad: 2 } }""",
    "two_writers": HEAD + """layer { name: "a" type: "Convolution" bottom: "data" top: "x"
        convolution_param { num_output: 2 kernel_size: 1 } }
        layer { name: "b" type: "Convolution" bottom: "data" top: "x"
        convolution_param { num_output: 2 kernel_size: 1 } }""",
    "concat_shapes": HEAD + """layer { name: "a" type: "Convolution" bottom: "data" top: "a"
        convolution_param { num_output: 2 kernel_size: 3 } }
        layer { name: "b" type: "Convolution" bottom: "data" top: "b"
        convolution_param { num_output: 2 kernel_size: 1 } }
        layer { name: "cat" type: "Concat" bottom: "a" bottom: "b" top: "cat" }""",
    "same_name": HEAD + """layer { name: "a" type: "ReLU" bottom: "data" top: "data" }
        layer { name: "a" type: "Convolution" bottom: "data" top: "c"
        convolution_param { num_output: 2 kernel_size: 1 } }""",
    "huge_stride": HEAD + """layer { name: "p" type: "Pooling" bottom: "data" top: "p"
        pooling_param { pool: MAX kernel_size: 3 stride: 4294967295 } }""",
    "huge_lrn": HEAD + """layer { name: "n" type: "LRN" bottom: "data" top: "n"
        lrn_param { local_size: 2147483647 } }""",
}
for name, text in CASES.items():
    try:
        create_engine("caffe", net_of(text))
        print(name, "accepted")
    except ViewerError as err:
        print(name, "refused:", err)

classifier = load_net(paths.CLASSIFIER_PROTOTXT, paths.CLASSIFIER_WEIGHTS)
engine = create_engine("caffe", classifier)
fcn = create_engine("caffe", surgery.make_fully_convolutional(classifier).net)
for name, eng, size in [("classifier_33", engine, 33), ("fcn_20", fcn, 20),
                        ("fcn_huge", fcn, 3000)]:
    try:
        eng.forward(np.zeros((1, 1, size, size), np.float32), ["ip2-alpha" if eng is engine
                                                               else "ip2-alpha-conv"])
        print(name, "accepted")
    except ViewerError as err:
        print(name, "refused:", err)
scores = fcn.forward(np.zeros((1, 1, 32, 32), np.float32), ["ip2-alpha-conv"])
print("fcn_32 still runs", scores["ip2-alpha-conv"].shape)
'''


def test_bad_nets_and_sizes_are_refused_before_caffe_can_abort():
    result = subprocess.run([sys.executable, "-c", BAD_CASES], capture_output=True, text=True,
                            cwd=ROOT, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, f"Caffe aborted:\n{result.stdout}\n{result.stderr[-2000:]}"
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    for case in ("groups", "lrn_even", "pool_pad", "two_writers", "concat_shapes", "same_name",
                 "huge_stride", "huge_lrn", "classifier_33", "fcn_20", "fcn_huge"):
        assert lines[case].startswith("refused:"), f"{case}: {lines[case]}"
    assert "more than the 2.0 GB allowed" in lines["fcn_huge"]
    assert "local_size 4 must be odd" in lines["lrn_even"]
    assert "runs only at its declared input size" in lines["classifier_33"]
    assert "smaller than" in lines["fcn_20"]
    bundled, _ = model_io.read_prototxt(paths.CLASSIFIER_PROTOTXT)
    classes = bundled.layer[-1].inner_product_param.num_output
    assert lines["fcn_32"] == f"still runs (1, {classes}, 2, 2)"


# Nets our reader accepts, mutated by the loader fuzz's strategy (one to three fields of a real
# net set to extreme values, or entries removed), run in Caffe at their size and a larger one.
# Every outcome must be a run or a ViewerError: an abort kills the child, which names the net.
CAFFE_FUZZ = r'''
import os, sys, tempfile
from pathlib import Path
sys.path.insert(0, "tests")
import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st
from test_engines import BRANCHY_NET
from test_fuzz_model_loader import SEED_CAFFEMODELS, SEED_NETS, mutated_nets
from viewer.caffe import model_io
from viewer.net.weights import init_weights, load_net
from viewer.engines import create_engine
from viewer.errors import ViewerError

param, _ = model_io.parse_prototxt(BRANCHY_NET, "branchy.prototxt")
SEED_NETS["branchy"] = init_weights(param, seed=0)
LAST = Path(sys.argv[2])

@settings(max_examples=int(sys.argv[1]), deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(mutated_nets(), st.booleans(), st.integers(0, 40))
def run(seed_and_net, with_its_weights, grow):
    _, net = seed_and_net
    text = model_io.prototxt_text(net)
    weights = net.SerializeToString() if with_its_weights else SEED_CAFFEMODELS[0]
    with tempfile.TemporaryDirectory() as tmp:
        proto, model = Path(tmp, "n.prototxt"), Path(tmp, "n.caffemodel")
        proto.write_text(text)
        model.write_bytes(weights)
        try:
            loaded = load_net(proto, model)
        except ViewerError:
            return
    LAST.write_text(f"{text}\n# weights: {'its own' if with_its_weights else 'tiny'}, "
                    f"grown by {grow}\n")
    try:
        engine = create_engine("caffe", loaded)
        shape = list(engine.input_shape)
        for extra in (0, grow):
            shape[2] += extra
            shape[3] += extra // 2
            engine.forward(np.ones(shape, np.float32), engine.blob_names[-1:])
    except ViewerError:
        pass

run()
print("no abort")
'''


def test_caffe_never_aborts_on_a_net_our_reader_loads(tmp_path):
    import resource

    examples = os.environ.get("FUZZ_EXAMPLES", "150")
    last = tmp_path / "last_net.prototxt"

    def at_most_8_gb():    # an allocation Caffe cannot make is an abort, not an OOM kill
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))

    result = subprocess.run([sys.executable, "-c", CAFFE_FUZZ, examples, str(last)],
                            capture_output=True, text=True, cwd=ROOT, timeout=600,
                            preexec_fn=at_most_8_gb, env={**os.environ, "PYTHONPATH": str(ROOT)})
    net = last.read_text() if last.exists() else "(none)"
    assert result.returncode == 0, (f"Caffe aborted on this net:\n{net}\n"
                                    f"{result.stderr[-1500:]}")
    assert result.stdout.strip() == "no abort"


@pytest.mark.parametrize("name, cells", [("caffenet_style", 8), ("resnet_bottleneck", 50),
                                         ("mobilenet_v2_block", 99)])
def test_the_dense_map_of_a_454_image_is_pycaffes_fully_convolutional_forward(name, cells,
                                                                               tmp_path):
    """The issue's check: the map of a 454x454 colour image (default engine) equals pycaffe's
    own forward of the surgered net, loaded from the files we write, on the same input."""
    import gallery

    dense = DenseClassifier(gallery.load(name, seed=4))
    image = gallery.image(454, 454, seed=4)
    fm = dense.run(image, 1.0)
    proto, weights = tmp_path / "fcn.prototxt", tmp_path / "fcn.caffemodel"
    model_io.write_net(dense.net, proto, weights)
    real = import_caffe().Net(str(proto), str(weights), caffe.TEST)
    data = dense.prepare(image, 1.0)
    real.blobs["data"].reshape(*data.shape)
    real.reshape()
    real.blobs["data"].data[...] = data
    real.forward()
    expected = real.blobs[dense.score_blob].data[0]
    assert fm.scores.shape == expected.shape == (10, cells, cells)
    scale = max(1.0, float(np.abs(expected).max()))
    assert _max_diff(fm.scores, expected) / scale < TOLERANCE
    assert _max_diff(fm.probs, softmax(expected, axis=0)) < TOLERANCE
