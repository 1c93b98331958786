"""BNNet, the second plate net: LeNet's window and stride, BatchNorm trained in PyTorch and
exported as Caffe's BatchNorm + Scale, so every engine and our surgery give what torch gave.

Needs the `train` extra (torch), as tests/test_training.py does; a few SGD iterations on a tiny
LMDB of drawn patterns.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.test_training import dataset  # noqa: E402,F401  (the module's tiny LMDB fixture)
from viewer import surgery  # noqa: E402
from viewer.caffe import model_io  # noqa: E402
from viewer.cli import main  # noqa: E402
from viewer.engines import available_engines, create_engine  # noqa: E402
from viewer.files import paths  # noqa: E402
from viewer.net import netgraph  # noqa: E402
from viewer.net.weights import load_net  # noqa: E402
from viewer.training import nets  # noqa: E402
from viewer.training.data import load_dataset  # noqa: E402
from viewer.training.solver import CaffeSGD, predict, starting_weights, train  # noqa: E402
from viewer.training.torchnet import CaffeTorchNet  # noqa: E402

SCORE = "ip2-alpha"


@pytest.fixture(scope="module")
def trained_bnnet(dataset):  # noqa: F811
    """A 12-iteration BNNet whose running statistics are then set to uneven values, so that
    the export of mean, variance and the Scale after them is tested, not the neutral start."""
    train_set, test_set = load_dataset(dataset)
    settings = nets.SolverSettings(max_iter=12, batch_size=16, test_batch_size=50,
                                   test_interval=6, display=4, seed=5)
    run = train(nets.bnnet_deploy(), train_set, test_set, settings, threads=1)
    rng = np.random.default_rng(2)
    for layer in run.net.param.layer:
        if layer.type == "BatchNorm":
            mean, var, factor = run.net.weights[layer.name]
            mean[:] = rng.normal(0, 0.3, mean.shape)
            var[:] = rng.uniform(0.2, 3.0, var.shape)
            factor[:] = 4.0                      # Caffe divides both by it
            mean *= 4.0
            var *= 4.0
    return run.net, test_set


def test_bnnet_keeps_lenets_window_stride_and_labels():
    deploy = nets.bnnet_deploy()
    shapes = netgraph.infer_shapes(deploy)
    assert shapes["data"] == (1, 1, 28, 28) and shapes[SCORE] == (1, 37)
    kinds = [l.type for l in deploy.layer]
    assert kinds.count("BatchNorm") == kinds.count("Scale") == 3
    assert all(not l.convolution_param.pad for l in deploy.layer if l.type == "Convolution")
    fcn = surgery.make_fully_convolutional(starting_weights(deploy, 0)).net
    fcn.param.layer[0].input_param.shape[0].dim[:] = [1, 1, 44, 60]
    score = netgraph.score_blob(fcn.param)
    assert netgraph.infer_shapes(fcn.param)[score] == (1, 37, 5, 9)  # (44-28)/4+1, (60-28)/4+1


def test_scale_layers_start_at_one_and_learn_at_caffes_rates():
    deploy = nets.bnnet_deploy()
    start = starting_weights(deploy, 0)
    gamma, beta = start.weights["conv2_scale"]
    assert np.all(gamma == 1) and np.all(beta == 0)
    train_test = nets.train_test_net(deploy, "a", "b", 64, 100)
    mults = nets.lr_multipliers(train_test)
    assert mults["conv1_scale"] == [(1.0, 1.0), (1.0, 1.0)]
    assert "conv1_bn" not in mults                      # statistics, not weights
    model = CaffeTorchNet(deploy)
    sgd = CaffeSGD(model, train_test, nets.SolverSettings())
    assert len(sgd.slots) == 3 + 3 * 2 + 2 * 2          # conv weights, gamma+beta, ip w+b


@pytest.mark.parametrize("engine", ["numpy", "onnx", "opencv", "caffe"])
def test_exported_bnnet_reproduces_torch_on_every_engine(trained_bnnet, tmp_path, engine):
    if engine not in available_engines():
        pytest.skip(f"{engine} is not installed here")
    net, test_set = trained_bnnet
    model_io.write_net(net, tmp_path / "n.prototxt", tmp_path / "n.caffemodel")
    loaded = load_net(tmp_path / "n.prototxt", tmp_path / "n.caffemodel")
    model = CaffeTorchNet(net.param)
    model.load_caffe(net)
    expected = predict(model, test_set)
    got = create_engine(engine, loaded).forward(test_set.images.astype(np.float32),
                                                [SCORE])[SCORE]
    assert got.shape == expected.shape == (60, 37)
    assert np.abs(got - expected).max() < 1e-4 * max(1.0, np.abs(expected).max())
    mean, var, factor = net.weights["conv1_bn"]
    norm = model.statistics()["conv1_bn"].norm          # Caffe's mean/s and var/s went in
    assert np.allclose(norm.running_var.numpy(), var / factor[0])
    assert np.allclose(norm.running_mean.numpy(), mean / factor[0])


def test_surgered_bnnet_maps_every_window_as_the_classifier(trained_bnnet):
    net, _ = trained_bnnet
    fcn = surgery.make_fully_convolutional(net).net
    fcn.param.layer[0].input_param.shape[0].dim[:] = [1, 1, 40, 48]
    image = np.random.default_rng(4).integers(0, 256, (1, 1, 40, 48)).astype(np.float32)
    score = netgraph.score_blob(fcn.param)
    dense = create_engine("numpy", fcn).forward(image, [score])[score]
    assert dense.shape == (1, 37, 4, 6)
    windows = np.stack([image[0, :, 4 * i:4 * i + 28, 4 * j:4 * j + 28]
                        for i in range(4) for j in range(6)])
    single = create_engine("numpy", net).forward(windows, [SCORE])[SCORE]
    assert np.abs(dense[0].reshape(37, -1).T - single).max() < 1e-4


def test_train_arch_bnnet_writes_its_own_files(dataset, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "models"
    assert main(["train", "--arch", "bnnet", "--data", str(dataset), "--out", str(out),
                 "--iters", "4", "--batch-size", "16", "--threads", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["bnnet_plates.caffemodel", "bnnet_plates.prototxt",
                     "bnnet_plates_mistakes.png", "bnnet_plates_training.json",
                     "bnnet_plates_training.png", "bnnet_solver.prototxt",
                     "bnnet_train_test.prototxt", "labels.txt"]
    assert summary["files"]["prototxt"].endswith("bnnet_plates.prototxt")
    record = json.loads((out / "bnnet_plates_training.json").read_text())
    assert record["arch"] == "bnnet" and "--arch bnnet" in record["command"]
    train_test, _ = model_io.read_prototxt(out / "bnnet_train_test.prototxt")
    assert [l.type for l in train_test.layer].count("BatchNorm") == 3
    written = load_net(out / "bnnet_plates.prototxt", out / "bnnet_plates.caffemodel")
    assert model_io.structure_of(written.param) == model_io.structure_of(nets.bnnet_deploy())


def test_shipped_bnnet_is_the_net_training_builds():
    model = paths.PLATE_MODELS["bnnet"]
    shipped, _ = model_io.read_prototxt(model.prototxt)
    assert model_io.structure_of(shipped) == model_io.structure_of(nets.bnnet_deploy())
    net = load_net(model.prototxt, model.weights)
    mean, var, factor = net.weights["conv3_bn"]
    assert factor.tolist() == [1.0] and np.all(var > 0) and np.any(mean != 0)


def test_shipped_bnnet_training_files_are_what_make_model_writes():
    """Real Caffe runs `caffe train --solver models/bnnet_solver.prototxt` from the repository:
    the train/test net is the one derived from the deploy net (a ParamSpec per blob: Caffe
    refuses one for the bias a convolution does not have)."""
    shipped, _ = model_io.read_prototxt(paths.MODELS / "bnnet_train_test.prototxt")
    data = [l for l in shipped.layer if l.type == "Data"]
    assert [l.data_param.source for l in data] == ["out/plates-din/train_lmdb",
                                                   "out/plates-din/test_lmdb"]
    rebuilt = nets.train_test_net(nets.bnnet_deploy(), data[0].data_param.source,
                                  data[1].data_param.source, data[0].data_param.batch_size,
                                  data[1].data_param.batch_size)
    assert shipped == rebuilt
    conv1 = next(l for l in shipped.layer if l.name == "conv1")
    assert len(conv1.param) == 1 and not conv1.convolution_param.bias_term
