"""The command line as users run it: exit codes, JSON, files written, one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import plate_like
import viewer
from viewer.net.weights import load_net
from viewer.caffe import model_io
from viewer.files import paths
from viewer.net import cost
from viewer.cli import main
from viewer.maps.featuremap import DenseClassifier
from viewer.maps.planning import size_text

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


@pytest.fixture
def plate_png(tmp_path):
    path = tmp_path / "plate.png"
    Image.fromarray(plate_like(60, 120, seed=2)).save(path)
    return path


def test_surgery_json_reports_shapes_paths_and_equivalence(lenet_files, classes, tmp_path):
    proto, weights = lenet_files
    before = proto.read_bytes(), weights.read_bytes()
    result = run_cli("surgery", "--prototxt", proto, "--weights", weights,
                     "--out", tmp_path / "out", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["layers"] == [
        {"layer": "ip1", "new_layer": "ip1-conv", "type": "InnerProduct",
         "old_shape": [500, 800], "new_shape": [500, 50, 4, 4]},
        {"layer": "ip2-alpha", "new_layer": "ip2-alpha-conv", "type": "InnerProduct",
         "old_shape": [classes, 500], "new_shape": [classes, 500, 1, 1]}]
    assert report["max_abs_diff"] < 1e-4 and report["passed"] is True
    fcn = load_net(report["prototxt"], report["weights"])
    assert fcn.weights["ip1-conv"][0].shape == (500, 50, 4, 4)
    assert (proto.read_bytes(), weights.read_bytes()) == before


def test_surgery_json_lists_a_global_pooling_with_the_inner_products(tmp_path):
    """MobileNet v1 ends in global pooling and a 1x1 convolution: the pooling is the one
    conversion, checked like the others; the written net maps larger images to more cells."""
    import gallery

    proto, weights = tmp_path / "mobilenet.prototxt", tmp_path / "mobilenet.caffemodel"
    model_io.write_net(gallery.load("mobilenet_v1_block"), proto, weights)
    result = run_cli("surgery", "--prototxt", proto, "--weights", weights,
                     "--out", tmp_path / "out", "--json", "--check-count", "2")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["layers"] == [{"layer": "pool6", "new_layer": "pool6", "type": "Pooling",
                                 "global_pooling": True, "kernel": [16, 16], "stride": [1, 1]}]
    assert report["passed"] is True and report["inputs_checked"] == 4
    fcn = load_net(report["prototxt"], report["weights"])
    fm = DenseClassifier(fcn, "onnx").run(gallery.image(96, 80), 1.0)
    assert fm.scores.shape == (10, 9, 5)   # (96 - 64) / 4 + 1, (80 - 64) / 4 + 1


def test_surgery_refuses_the_tutorials_1x1_prototxt(lenet_files, tmp_path):
    proto, weights = lenet_files
    fcn_text = paths.FCN_PROTOTXT.read_text().replace("kernel_size: 4", "kernel_size: 1")
    (tmp_path / "featuremap.prototxt").write_text(fcn_text)
    result = run_cli("surgery", "--prototxt", proto, "--weights", weights, "--out",
                     tmp_path / "out", "--fcn-prototxt", tmp_path / "featuremap.prototxt")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "the kernel must be 4x4, not 1x1" in result.stderr
    assert not (tmp_path / "out" / "lenet_fullconv.caffemodel").exists()


def test_surgery_never_writes_over_its_input(lenet_files):
    proto, weights = lenet_files
    clash = proto.with_name("lenet_fullconv.prototxt")  # the name surgery would write
    proto.rename(clash)
    before = clash.read_bytes()
    result = run_cli("surgery", "--prototxt", clash, "--weights", weights, "--out", clash.parent)
    assert result.returncode == 2
    assert "refusing to overwrite the input file" in result.stderr
    assert clash.read_bytes() == before


def test_map_writes_npz_pictures_and_json(plate_png, tmp_path):
    result = run_cli("map", plate_png, "--scale", "1", "--out", tmp_path / "maps", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["stride"] == [4, 4] and summary["receptive_field"] == [28, 28]
    assert summary["offset"] == [0, 0]
    assert summary["output_shape"][1:] == [9, 24]
    assert summary["forward_ms"] > 0
    with np.load(summary["files"]["npz"]) as npz:
        assert set(npz.files) == {"probs", "scores", "conv1", "labels", "scale", "stride",
                                  "offset", "receptive_field", "image_shape"}
        assert npz["probs"].shape == tuple(summary["output_shape"])
        assert list(npz["image_shape"]) == [60, 120]
        assert npz["conv1"].shape == (20, 56, 116)
    overlay = Image.open(summary["files"]["overlay"])
    assert overlay.size == (120, 60)


# Small enough that an 800x600 pass is over onnxruntime's estimate (288 MB) but within the
# blas engine's (109 MB, 145 MB with the pictures `map` draws), so the fallback runs without
# allocating gigabytes.
SMALL_LIMIT = 160 * 2**20


def test_map_and_read_fall_back_to_blas_with_a_note_on_stderr(tmp_path, monkeypatch, capsys):
    photo = tmp_path / "photo.png"
    Image.fromarray(plate_like(600, 800, seed=3)).save(photo)
    dense = DenseClassifier(load_net(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS), "onnx")
    pictures = dense.planner.picture_bytes((600, 800), 600, 800)       # what `map` draws afterwards

    def note_for(drawn: float) -> str:
        onnx_need = dense.planner.forward_bytes(600, 800) + drawn
        blas_need = dense.planner.forward_bytes(600, 800, engine=dense.planner.lean_engine) + drawn
        assert blas_need <= SMALL_LIMIT < onnx_need
        return (f"note: the 800x600 input needs {size_text(onnx_need)} on 'onnx'; using "
                f"'blas' ({size_text(blas_need)})\n")
    note, read_note = note_for(pictures), note_for(0)
    monkeypatch.setattr(cost, "MEMORY_LIMIT", SMALL_LIMIT)
    common = ["--scale", "1", "--engine", "onnx"]

    assert main(["map", str(photo), *common, "--out", str(tmp_path / "json"), "--json"]) == 0
    out = capsys.readouterr()
    assert out.err == note
    summary = json.loads(out.out)
    assert summary["engine"] == "blas" and summary["output_shape"][1:] == [144, 194]
    assert Path(summary["files"]["npz"]).stat().st_size > 0

    assert main(["map", str(photo), *common, "--out", str(tmp_path / "text")]) == 0
    out = capsys.readouterr()
    assert out.err == note and "x 144 x 194 cells" in out.out and "ms (blas)" in out.out

    assert main(["read", str(photo), *common, "--json", "--model", "lenet"]) == 0
    out = capsys.readouterr()
    assert out.err == read_note and json.loads(out.out)["engine"] == "blas"

    monkeypatch.undo()                        # the real limit: onnx fits, no note
    assert main(["map", str(photo), *common, "--out", str(tmp_path / "onnx"), "--json"]) == 0
    out = capsys.readouterr()
    assert out.err == "" and json.loads(out.out)["engine"] == "onnx"


def test_map_with_a_classifier_performs_surgery_in_memory(plate_png, lenet_files, classes,
                                                          tmp_path):
    proto, weights = lenet_files
    result = run_cli("map", plate_png, "--prototxt", proto, "--weights", weights,
                     "--out", tmp_path, "--json", "--engine", "numpy")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["output_shape"] == [classes, 9, 24]


@pytest.mark.parametrize("args, message", [
    (["map", "missing.png", "--out", "x"], "missing.png does not exist"),
    (["map", "setup.cfg", "--out", "x"], "setup.cfg is not an image"),
    (["map", "resources/sample_plate.png", "--out", "x", "--prototxt", "models/labels.txt"],
     "give --prototxt and --weights together"),
    (["map", "resources/sample_plate.png", "--out", "x", "--scale", "0.01"],
     "smallest scale that works"),
])
def test_errors_are_one_line_with_exit_code_2(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback():
    result = run_cli("--debug", "map", "missing.png", "--out", "x")
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_unknown_engine_is_refused_by_the_parser():
    result = run_cli("map", "resources/sample_plate.png", "--out", "x", "--engine", "tpu")
    assert result.returncode == 2 and "invalid choice: 'tpu'" in result.stderr


def test_python_m_viewer_prints_the_version():
    result = subprocess.run([sys.executable, "-m", "viewer", "--version"], capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0
    assert result.stdout == f"netsurgery-viewer {viewer.__version__}\n"


def test_the_wheel_declares_every_bundled_file():
    """setup.cfg's package data holds every file `viewer.files.paths` names, and each of its
    lines (a name or a glob) names files that exist (a file missing there is missing from the
    wheel: scripts/check-wheel.sh builds and runs one)."""
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    declared = set()
    for line in config["options.package_data"]["viewer"].split():
        found = sorted(p for p in paths.PACKAGE.glob(line) if p.is_file())
        assert found, f"setup.cfg's package data names {line}, which is not there"
        declared.update(found)
    bundled = {value for name, value in vars(paths).items()
               if name.isupper() and isinstance(value, Path) and value.suffix}
    assert bundled <= declared
    assert all(p.is_file() for p in bundled)
    assert any(p.suffix == ".ttf" for p in declared)          # the plate faces (OFL) travel too
