"""`train --engine caffe`: real Caffe runs the generated solver on a `dataset make` LMDB, and
what it writes loads in the viewer and runs in another engine."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
if os.environ.get("NETSURGERY_REQUIRE_CAFFE"):     # set by CI once `make caffe` succeeded
    import caffe  # noqa: F401
else:
    pytest.importorskip("caffe")

from conftest import plate_like  # noqa: E402
from viewer.net.weights import init_weights, load_net
from viewer.caffe import model_io  # noqa: E402
from viewer.engines import create_engine  # noqa: E402
from viewer.training import nets  # noqa: E402
from viewer.training.caffe_train import train_with_caffe  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), "dataset", "make", "--out",
                             str(out), "--count", "200"], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    return out


def test_caffe_trains_from_the_lmdb_and_the_viewer_loads_the_result(tiny_dataset, tmp_path):
    settings = nets.SolverSettings(max_iter=12, batch_size=16, test_batch_size=50,
                                   test_interval=6, display=4, base_lr=0.01, seed=1)
    lines: list[str] = []
    ticks: list[int] = []
    run = train_with_caffe(tiny_dataset, tmp_path, settings, progress=lines.append,
                           tick=lambda: ticks.append(len(ticks)))
    assert len(ticks) == 12           # the progress bar moves once an iteration
    files = run.files
    for key in ("prototxt", "caffemodel", "train_test", "solver", "labels", "curves", "summary",
                "snapshot"):
        assert files[key].is_file(), key
    assert [t["iteration"] for t in run.tests] == [6, 12]
    assert run.final["count"] == 20 and 0.0 <= run.final["accuracy"] <= 1.0
    assert [l[0] for l in run.losses] == [4, 8, 12] and all(np.isfinite(l[1]) for l in run.losses)
    summary = json.loads(files["summary"].read_text())
    assert summary["engine"] == "caffe" and summary["final"] == run.final

    # Caffe wrote the weights (its file also lists the Data and loss layers, without blobs).
    written = model_io.read_caffemodel(files["caffemodel"])
    assert {"Data", "SoftmaxWithLoss"} <= {l.type for l in written.layer}
    net = load_net(files["prototxt"], files["caffemodel"])
    snapshot = load_net(files["prototxt"], files["snapshot"])
    assert sorted(net.weights) == ["conv1", "conv2", "ip1", "ip2-alpha"]
    start = init_weights(nets.lenet_deploy(), seed=0)
    for name, arrays in net.weights.items():
        np.testing.assert_array_equal(arrays[0], snapshot.weights[name][0])
        assert arrays[0].shape == start.weights[name][0].shape

    windows = np.stack([plate_like(28, 28, seed=k) for k in range(4)])[:, None]
    windows = windows.astype(np.float32)
    scores = create_engine("opencv", net).forward(windows, ["ip2-alpha"])["ip2-alpha"]
    assert scores.shape == (4, 37) and np.isfinite(scores).all()
    real = create_engine("caffe", net).forward(windows, ["ip2-alpha"])["ip2-alpha"]
    assert float(np.abs(scores - real).max()) < 1e-4
    assert any("test @ iter 12" in line for line in lines)


def test_caffe_trains_bnnet_and_its_statistics_load_in_our_engines(tiny_dataset, tmp_path):
    """BNNet's train/test net runs in real Caffe: its BatchNorm layers keep their statistics
    with Caffe's factor s (not 1), which our engines divide out as Caffe does."""
    settings = nets.SolverSettings(max_iter=6, batch_size=16, test_batch_size=50,
                                   test_interval=6, display=3, seed=2)
    run = train_with_caffe(tiny_dataset, tmp_path, settings, arch=nets.ARCHITECTURES["bnnet"])
    assert run.files["prototxt"].name == "bnnet_plates.prototxt"
    net = load_net(run.files["prototxt"], run.files["caffemodel"])
    mean, var, factor = net.weights["conv2_bn"]
    assert factor[0] > 1.0 and np.any(mean != 0)       # Caffe's running sums, not ours
    windows = np.stack([plate_like(28, 28, seed=k) for k in range(4)])[:, None]
    windows = windows.astype(np.float32)
    ours = create_engine("onnx", net).forward(windows, ["ip2-alpha"])["ip2-alpha"]
    real = create_engine("caffe", net).forward(windows, ["ip2-alpha"])["ip2-alpha"]
    assert float(np.abs(ours - real).max()) < 1e-4 * max(1.0, float(np.abs(real).max()))


def test_a_missing_dataset_is_one_clear_error(tmp_path):
    from viewer.errors import TrainingError

    with pytest.raises(TrainingError, match="dataset make"):
        train_with_caffe(tmp_path / "nowhere", tmp_path / "out", nets.SolverSettings(max_iter=1))


def test_train_command_with_the_caffe_engine(tiny_dataset, tmp_path, capsys):
    from viewer.cli import main

    code = main(["train", "--engine", "caffe", "--data", str(tiny_dataset), "--out",
                 str(tmp_path), "--iters", "3", "--batch-size", "8", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["engine"] == "caffe" and report["final"]["iteration"] == 3
    net = load_net(report["files"]["prototxt"], report["files"]["caffemodel"])
    assert net.weights["ip2-alpha"][0].shape == (37, 500)


def test_records_caffe_would_abort_on_are_refused(tmp_path):
    """Caffe's Data layer aborts the process on these; we say what is wrong first."""
    import cv2

    import lmdb

    from viewer.caffe.lmdb_io import write_lmdb
    from viewer.caffe.proto import caffe_pb2
    from viewer.errors import TrainingError
    from viewer.training.caffe_train import check_records

    good = np.full((1, 28, 28), 200, np.uint8)
    write_lmdb(tmp_path / "label", [(good, 0), (good, 40)])
    with pytest.raises(TrainingError, match="label 40; the net has 37 classes"):
        check_records(tmp_path / "label", (1, 28, 28), 37)
    write_lmdb(tmp_path / "size", [(good, 0), (np.zeros((1, 32, 32), np.uint8), 1)])
    with pytest.raises(TrainingError, match="1x32x32, the net reads 1x28x28"):
        check_records(tmp_path / "size", (1, 28, 28), 37)
    env = lmdb.open(str(tmp_path / "encoded"), map_size=1 << 20)
    png = cv2.imencode(".png", good[0])[1].tobytes()
    with env.begin(write=True) as txn:
        txn.put(b"00000000", caffe_pb2.Datum(channels=1, height=28, width=28, data=png,
                                             label=0, encoded=True).SerializeToString())
    env.close()
    with pytest.raises(TrainingError, match="encoded"):
        check_records(tmp_path / "encoded", (1, 28, 28), 37)
    assert check_records(tmp_path / "label", (1, 28, 28), 41) == 2
