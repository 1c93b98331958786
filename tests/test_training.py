"""Training in PyTorch and the export: the opencv engine must reproduce what PyTorch computed.

Needs the `train` extra (torch); skipped as a whole without it. Runs a few SGD iterations on
a tiny LMDB of drawn patterns, so every test takes well under a second or two.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from google.protobuf import text_format

torch = pytest.importorskip("torch")

from viewer.net.weights import load_net
from viewer import surgery  # noqa: E402
from viewer.caffe import model_io
from viewer.cli import main  # noqa: E402
from viewer.caffe.lmdb_io import write_lmdb  # noqa: E402
from viewer.engines import create_engine  # noqa: E402
from viewer.maps.labels import BACKGROUND  # noqa: E402
from viewer.caffe.proto import caffe_pb2  # noqa: E402
from viewer.training import nets  # noqa: E402
from viewer.training.data import load_dataset  # noqa: E402
from viewer.training.solver import CaffeSGD, predict, train  # noqa: E402
from viewer.training.torchnet import CaffeTorchNet  # noqa: E402


def pattern(label: int, rng: np.random.Generator) -> np.ndarray:
    """A 28x28 window whose content depends on the label: a few bars on light ground."""
    image = np.full((28, 28), 200, np.uint8)
    if label != BACKGROUND:
        x = 4 + (label % 6) * 3
        y = 4 + (label // 6) * 3
        cv2.rectangle(image, (x, 4), (x + 2, 23), 30, -1)
        cv2.rectangle(image, (4, y), (23, y + 1), 60, -1)
    noise = rng.normal(0, 10, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """train_lmdb (240 windows) and test_lmdb (60) in a folder as `dataset make` writes it."""
    folder = tmp_path_factory.mktemp("windows")
    rng = np.random.default_rng(0)
    for name, count in (("train_lmdb", 240), ("test_lmdb", 60)):
        labels = rng.integers(0, BACKGROUND + 1, count)
        write_lmdb(folder / name, ((pattern(int(k), rng), int(k)) for k in labels))
    return folder


@pytest.fixture(scope="module")
def trained(dataset):
    train_set, test_set = load_dataset(dataset)
    settings = nets.SolverSettings(max_iter=12, batch_size=16, test_batch_size=50,
                                   test_interval=6, display=4, seed=3)
    return train(nets.lenet_deploy(), train_set, test_set, settings, threads=1), test_set


def torch_scores(net: model_io.CaffeNet, images: np.ndarray) -> np.ndarray:
    model = CaffeTorchNet(net.param)
    model.load_caffe(net)
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(images.astype(np.float32))).numpy()


def test_exported_weights_reproduce_torch_outputs_in_opencv(trained, tmp_path):
    run, test_set = trained
    model_io.write_net(run.net, tmp_path / "n.prototxt", tmp_path / "n.caffemodel")
    loaded = load_net(tmp_path / "n.prototxt", tmp_path / "n.caffemodel")
    images = test_set.images.astype(np.float32)
    model = CaffeTorchNet(run.net.param)
    model.load_caffe(run.net)
    expected = predict(model, test_set)
    got = create_engine("opencv", loaded).forward(images, ["ip2-alpha"])["ip2-alpha"]
    assert got.shape == expected.shape == (60, 37)
    assert np.abs(got - expected).max() < 1e-4


def test_pooling_rounds_up_as_in_caffe(trained):
    """On a size where ceil and floor pooling differ, torch agrees with the opencv engine."""
    run, _ = trained
    fcn = surgery.make_fully_convolutional(run.net).net
    fcn.param.layer[0].input_param.shape[0].dim[:] = [1, 1, 37, 61]
    image = np.random.default_rng(1).integers(0, 256, (1, 1, 37, 61)).astype(np.float32)
    score = fcn.param.layer[-1].top[0]
    got = create_engine("opencv", fcn).forward(image, [score])[score]
    expected = torch_scores(fcn, image)
    assert expected.shape == got.shape == (1, 37, 4, 10)
    assert np.abs(got - expected).max() < 1e-4


def test_training_is_deterministic(dataset):
    train_set, test_set = load_dataset(dataset)
    settings = nets.SolverSettings(max_iter=5, batch_size=16, test_interval=0, display=5)

    def weights(seed: int) -> list[np.ndarray]:
        s = nets.SolverSettings(**{**settings.__dict__, "seed": seed})
        run = train(nets.lenet_deploy(), train_set, test_set, s, threads=1)
        return [a for blobs in run.net.weights.values() for a in blobs]

    first, again, other = weights(1), weights(1), weights(2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_sgd_step_is_caffes_update():
    """v = m v + lr lr_mult (g + wd decay_mult w); w -= v, for a weight and a 2x-rate bias."""
    deploy = nets.lenet_deploy()
    model = CaffeTorchNet(deploy)
    settings = nets.SolverSettings(base_lr=0.1, momentum=0.5, weight_decay=0.01,
                                   lr_policy="fixed")
    sgd = CaffeSGD(model, nets.train_test_net(deploy, "a", "b", 1, 1), settings)
    ip = model.learnable()["ip2-alpha"]
    w0, b0 = ip.weight.detach().clone(), ip.bias.detach().clone()
    with torch.no_grad():
        ip.bias.add_(1.0)
    b0 = b0 + 1.0
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    sgd.step(0)
    v_w, v_b = 0.1 * (1 + 0.01 * w0), 0.2 * (1 + 0.01 * b0)
    torch.testing.assert_close(ip.weight.detach(), w0 - v_w)
    torch.testing.assert_close(ip.bias.detach(), b0 - v_b)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    w1, b1 = w0 - v_w, b0 - v_b
    sgd.step(1)
    torch.testing.assert_close(ip.weight.detach(), w1 - (0.5 * v_w + 0.1 * (1 + 0.01 * w1)))
    torch.testing.assert_close(ip.bias.detach(), b1 - (0.5 * v_b + 0.2 * (1 + 0.01 * b1)))


def test_a_run_reports_tests_and_losses(trained):
    run, test_set = trained
    assert [t.iteration for t in run.tests] == [6, 12]
    assert [l[0] for l in run.losses] == [4, 8, 12]
    assert run.final.count == len(test_set)
    assert 0.0 <= run.final.char_accuracy <= 1.0


def test_train_command_writes_the_model_and_the_caffe_training_files(dataset, tmp_path, capsys):
    out = tmp_path / "models"
    code = main(["train", "--data", str(dataset), "--out", str(out), "--iters", "4",
                 "--batch-size", "16", "--threads", "1", "--seed", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "iter 4/4" in captured.err and "test @ iter 4" in captured.err
    net = load_net(out / "lenet_plates.prototxt", out / "lenet_plates.caffemodel")
    assert net.weights["ip2-alpha"][0].shape == (37, 500)
    train_test, _ = model_io.read_prototxt(out / "lenet_train_test.prototxt")
    sources = [l.data_param.source for l in train_test.layer if l.type == "Data"]
    assert sources == [str(dataset / "train_lmdb"), str(dataset / "test_lmdb")]
    solver = caffe_pb2.SolverParameter()
    text_format.Parse((out / "lenet_solver.prototxt").read_text(), solver)
    assert (solver.net, solver.max_iter, solver.random_seed) == \
        (str(out / "lenet_train_test.prototxt"), 4, 2)
    assert (out / "labels.txt").read_text().splitlines()[-1] == "background"
    curves = cv2.imread(str(out / "lenet_plates_training.png"))
    assert curves is not None and curves.shape[2] == 3
    assert cv2.imread(str(out / "lenet_plates_mistakes.png")) is not None
    summary = json.loads((out / "lenet_plates_training.json").read_text())
    assert summary["final"]["iteration"] == 4
    assert "--iters 4 --batch-size 16" in summary["command"]
    capsys.readouterr()
    assert main(["train", "--data", str(dataset), "--out", str(out), "--evaluate", "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["char_accuracy"] == pytest.approx(summary["final"]["char_accuracy"])
    assert measured["loss"] == pytest.approx(summary["final"]["loss"], abs=1e-5)


def test_train_command_names_a_missing_dataset(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    assert code == 2
    assert "dataset folder" in capsys.readouterr().err
