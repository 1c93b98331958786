"""The Caffe side of training: deploy net, train/test net, solver, and the shipped model files.

None of this needs PyTorch.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from viewer.net.weights import init_weights, load_net
from viewer.caffe import model_io
from viewer.files import paths
from viewer.net import netgraph
from viewer.engines import create_engine
from viewer.maps.labels import labels_for
from viewer.caffe.proto import caffe_pb2
from viewer.training import nets
from viewer.errors import TrainingError

TUTORIAL_LAYERS = ["data", "scale", "conv1", "pool1", "conv2", "pool2", "dropout", "ip1",
                   "relu1", "ip2-alpha"]


def as_deploy(train_test: caffe_pb2.NetParameter, shape: tuple[int, ...]) -> caffe_pb2.NetParameter:
    """What Caffe runs in the TEST phase, with the Data layer replaced by an Input of `shape`."""
    net = caffe_pb2.NetParameter(name=train_test.name)
    data = next(l for l in train_test.layer if l.type == "Data")
    net.layer.add(name="data", type="Input", top=[data.top[0]]).input_param.shape.add(dim=shape)
    for layer in train_test.layer:
        if layer.type not in netgraph.TRAINING_ONLY:
            net.layer.append(layer)
    return net


def test_deploy_is_the_tutorial_lenet_with_a_background_class():
    deploy = nets.lenet_deploy()
    assert [l.name for l in deploy.layer] == TUTORIAL_LAYERS
    shapes = netgraph.infer_shapes(deploy)
    assert shapes["ip2-alpha"] == (1, 37)
    assert labels_for(37)[-1] == "background"


def test_train_test_net_reads_lmdbs_in_both_phases():
    net = nets.train_test_net(nets.lenet_deploy(), "d/train_lmdb", "d/test_lmdb", 64, 500)
    data = [l for l in net.layer if l.type == "Data"]
    assert [(l.include[0].phase, l.data_param.source, l.data_param.batch_size) for l in data] \
        == [(caffe_pb2.TRAIN, "d/train_lmdb", 64), (caffe_pb2.TEST, "d/test_lmdb", 500)]
    assert all(l.data_param.backend == caffe_pb2.DataParameter.LMDB for l in data)
    assert all(list(l.top) == ["data", "label"] for l in data)
    loss = next(l for l in net.layer if l.type == "SoftmaxWithLoss")
    accuracy = next(l for l in net.layer if l.type == "Accuracy")
    assert list(loss.bottom) == list(accuracy.bottom) == ["ip2-alpha", "label"]
    assert accuracy.include[0].phase == caffe_pb2.TEST
    conv1 = next(l for l in net.layer if l.name == "conv1")
    assert [p.lr_mult for p in conv1.param] == [1, 2]
    assert conv1.convolution_param.weight_filler.type == "xavier"


def test_scaling_moves_from_the_power_layer_to_the_data_transform():
    deploy = nets.lenet_deploy()
    net = nets.train_test_net(deploy, "a", "b", 8, 8)
    assert "Power" not in {l.type for l in net.layer}
    assert next(l for l in net.layer if l.name == "conv1").bottom[0] == "data"
    for layer in (l for l in net.layer if l.type == "Data"):
        assert layer.transform_param.scale == pytest.approx(1 / 256)


def test_train_test_net_computes_what_the_deploy_net_computes():
    """Caffe's transform scales raw pixels before the train/test net; the deploy net scales them
    itself. With the same weights both give the same scores, so nothing is scaled twice."""
    deploy = nets.lenet_deploy()
    weights = init_weights(deploy, seed=5).weights
    train_test = nets.train_test_net(deploy, "a", "b", 4, 4)
    raw = np.random.default_rng(0).integers(0, 256, (4, 1, 28, 28)).astype(np.float32)
    scale = next(l for l in train_test.layer if l.type == "Data").transform_param.scale
    caffe_view = model_io.CaffeNet(as_deploy(train_test, (4, 1, 28, 28)), weights)
    ours = create_engine("numpy", model_io.CaffeNet(deploy, weights)).forward(raw, ["ip2-alpha"])
    theirs = create_engine("numpy", caffe_view).forward(raw * scale, ["ip2-alpha"])
    np.testing.assert_allclose(ours["ip2-alpha"], theirs["ip2-alpha"], rtol=1e-5, atol=1e-5)


def _with_power(power: float, scale: float, shift: float) -> caffe_pb2.NetParameter:
    deploy = nets.lenet_deploy()
    p = deploy.layer[1].power_param
    p.power, p.scale, p.shift = power, scale, shift
    return deploy


def test_a_shifted_power_layer_becomes_a_mean_value():
    net = nets.train_test_net(_with_power(1.0, 0.5, -10.0), "a", "b", 1, 1)
    data = net.layer[0]
    assert data.transform_param.scale == 0.5
    assert list(data.transform_param.mean_value) == [20.0]  # (x - 20) * 0.5 == 0.5x - 10


def test_a_nonlinear_power_layer_is_refused():
    with pytest.raises(TrainingError, match="Power layer 'scale'"):
        nets.train_test_net(_with_power(2.0, 1.0, 0.0), "a", "b", 1, 1)


def test_a_net_without_power_layer_trains_on_raw_pixels():
    deploy = nets.lenet_deploy()
    del deploy.layer[1]
    deploy.layer[1].bottom[0] = "data"
    data = nets.train_test_net(deploy, "a", "b", 1, 1).layer[0]
    assert not data.HasField("transform_param")


def test_solver_states_the_settings_and_covers_the_test_set():
    settings = nets.SolverSettings(max_iter=3000, test_batch_size=500, seed=4)
    solver = nets.solver(settings, "models/lenet_train_test.prototxt", 30001, "models/lenet")
    again = caffe_pb2.SolverParameter()
    text_format.Parse(nets.solver_text(solver), again)
    assert again.test_iter == [61]
    assert (again.max_iter, again.lr_policy, again.random_seed, again.type) == \
        (3000, "poly", 4, "SGD")
    assert again.net == "models/lenet_train_test.prototxt"
    assert again.solver_mode == caffe_pb2.SolverParameter.CPU


def test_inv_policy_is_caffes_formula():
    s = nets.SolverSettings(base_lr=0.01, lr_policy="inv", gamma=1e-4, power=0.75)
    assert s.learning_rate(0) == pytest.approx(0.01)
    assert s.learning_rate(10000) == pytest.approx(0.01 * 2 ** -0.75)


def test_poly_policy_falls_to_zero_at_the_last_iteration():
    s = nets.SolverSettings(base_lr=0.02, lr_policy="poly", power=1.0, max_iter=100)
    assert [s.learning_rate(i) for i in (0, 50, 100)] == pytest.approx([0.02, 0.01, 0.0])


def test_an_unknown_policy_is_named():
    with pytest.raises(TrainingError, match="'step'"):
        nets.SolverSettings(lr_policy="step").learning_rate(0)


def test_shipped_classifier_is_the_net_training_builds():
    shipped, _ = model_io.read_prototxt(paths.CLASSIFIER_PROTOTXT)
    assert model_io.structure_of(shipped) == model_io.structure_of(nets.lenet_deploy())
    net = load_net(paths.CLASSIFIER_PROTOTXT, paths.CLASSIFIER_WEIGHTS)
    assert net.weights["ip2-alpha"][0].shape == (37, 500)


def test_shipped_train_test_net_matches_the_shipped_classifier():
    shipped, _ = model_io.read_prototxt(paths.MODELS / "lenet_train_test.prototxt")
    data = [l for l in shipped.layer if l.type == "Data"]
    rebuilt = nets.train_test_net(nets.lenet_deploy(), data[0].data_param.source,
                                  data[1].data_param.source, data[0].data_param.batch_size,
                                  data[1].data_param.batch_size)
    assert shipped == rebuilt


def test_shipped_labels_name_every_output():
    lines = (paths.MODELS / "labels.txt").read_text().splitlines()
    assert lines == labels_for(37)


def test_shipped_solver_runs_from_the_repository_folder():
    """`caffe train --solver models/lenet_solver.prototxt` from the repo finds every file."""
    solver = caffe_pb2.SolverParameter()
    text_format.Parse((paths.MODELS / "lenet_solver.prototxt").read_text(), solver)
    root = Path(__file__).resolve().parent.parent
    assert (root / solver.net).resolve() == (paths.MODELS / "lenet_train_test.prototxt").resolve()
    assert solver.snapshot_prefix == "models/lenet_plates"
    train_test, _ = model_io.read_prototxt(root / solver.net)
    sources = [l.data_param.source for l in train_test.layer if l.type == "Data"]
    assert sources == ["out/plates/train_lmdb", "out/plates/test_lmdb"]


def options(**given) -> nets.TrainingOptions:
    asked = dict(iters=None, epochs=None, batch_size=64, base_lr=0.01, lr_policy="poly",
                 lr_power=None, test_interval=None, seed=0)
    return nets.TrainingOptions(**{**asked, **given})


def test_options_turn_epochs_into_whole_iterations_and_derive_the_rest():
    s = options(epochs=2.5).settings(1000)           # 2.5 * 1000 / 64 = 39.06 -> 40
    assert (s.max_iter, s.test_interval, s.display, s.power) == (40, 4, 2, 1.0)
    s = options().settings(540_000)                  # DEFAULT_EPOCHS: 8 * 540k / 64
    assert (s.max_iter, s.test_interval, s.display) == (67_500, 6_750, 100)
    s = options(iters=7, lr_policy="inv", test_interval=3, seed=5).settings(10)
    assert (s.max_iter, s.test_interval, s.display, s.power, s.seed) == (7, 3, 1, 0.75, 5)
    with pytest.raises(TrainingError, match="at least one iteration"):
        options(iters=0).settings(1000)


def test_training_without_pytorch_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    from viewer.cli import main

    monkeypatch.setitem(sys.modules, "torch", None)       # import torch raises ImportError
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path), "--iters", "1"]) == 2
    assert "training needs PyTorch: pip install -e '.[train]'" in capsys.readouterr().err
