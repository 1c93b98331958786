"""Saved maps: the npz holds what the map held, written without a copy of it in memory."""
from __future__ import annotations

import json
import tracemalloc
import zipfile

import numpy as np
import pytest

from viewer.maps.export import NPZ_KEYS, save_npz
from viewer.maps.featuremap import FeatureMap
from viewer.net.geometry import Geometry


def test_the_npz_streams_to_disk_and_reads_back_equal(tmp_path):
    rng = np.random.default_rng(0)
    conv1 = rng.random((20, 1500, 1000), dtype=np.float32)     # 120 MB that barely compress
    probs = rng.random((3, 240, 240), dtype=np.float32)
    fm = FeatureMap(np.log(probs), probs, conv1, ["a", "b", "c"],
                    Geometry((4, 5), (-2, -3), (28, 30), (1.0, 1.0)), (1000, 999), 0.75, 1.0)
    tracemalloc.start()
    try:
        path = save_npz(fm, tmp_path / "featuremap.npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert path.stat().st_size > 100_000_000
    # numpy writes an array to a zip in chunks of 64 MiB; held as bytes, the file alone is more
    assert peak < 70_000_000
    _assert_npz_holds(path, fm)


def _assert_npz_holds(path, fm: FeatureMap) -> None:
    """Every key of the file against the map it came from: no key may stand for another."""
    with np.load(path) as npz:
        assert set(npz.files) == set(NPZ_KEYS)
        np.testing.assert_array_equal(npz["probs"], fm.probs)
        np.testing.assert_array_equal(npz["scores"], fm.scores)
        conv1 = fm.conv1 if fm.conv1 is not None else np.zeros((0, 0, 0), np.float32)
        np.testing.assert_array_equal(npz["conv1"], conv1)
        assert (npz["conv1"].shape, npz["conv1"].dtype) == (conv1.shape, np.float32)
        assert list(npz["labels"]) == fm.labels
        assert npz["scale"].dtype == np.float64 and float(npz["scale"]) == fm.scale
        assert tuple(npz["stride"]) == fm.geometry.stride
        assert tuple(npz["offset"]) == fm.geometry.offset
        assert tuple(npz["receptive_field"]) == fm.geometry.receptive_field
        assert tuple(npz["image_shape"]) == fm.image_shape


def test_every_key_of_a_small_map_reads_back_as_the_map_held_it(tmp_path):
    rng = np.random.default_rng(1)
    scores = rng.normal(0, 3, (4, 5, 7)).astype(np.float32)
    probs = np.exp(scores) / np.exp(scores).sum(axis=0)
    for conv1 in (rng.random((3, 9, 11), dtype=np.float32), None):
        fm = FeatureMap(scores, probs, conv1, ["a", "b", "c", "bg"],
                        Geometry((4, 3), (-1, -2), (28, 26), (0.5, 0.5)), (60, 80), 0.5, 2.0)
        _assert_npz_holds(save_npz(fm, tmp_path / "map.npz"), fm)


def test_the_onnx_export_runs_alone_and_gives_the_map_of_map(lenet_files, classes, tmp_path,
                                                             capsys):
    import onnx
    import onnxruntime as ort
    from PIL import Image

    from conftest import plate_like
    from viewer.cli import main

    proto, weights = lenet_files
    png, out = tmp_path / "plate.png", tmp_path / "lenet.onnx"
    Image.fromarray(plate_like(60, 130, seed=4)).save(png)
    model_args = ["--prototxt", str(proto), "--weights", str(weights)]
    assert main(["export", "--onnx", str(out), *model_args]) == 0
    assert main(["map", str(png), "--scale", "1", "--out", str(tmp_path), *model_args]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}\n")
    with np.load(tmp_path / "featuremap.npz") as npz:
        probs, scores = npz["probs"], npz["scores"]

    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    shape = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in shape] == ["N", 1, "H", "W"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert [json.loads(meta[k]) for k in ("stride", "offset", "window")] == [[4, 4], [0, 0],
                                                                             [28, 28]]
    assert len(json.loads(meta["labels"])) == classes
    written = {name for node in model.graph.node for name in node.output}
    assert {"conv1", "pool1", "conv2", "pool2", "ip1-conv", "ip2-alpha-conv"} <= written

    # What any runtime does with the file alone: gray pixels 0-255 in, the map out.
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    gray = np.asarray(Image.open(png).convert("L"), np.float32)[None, None]
    got_scores, got_probs = session.run([meta["scores"], meta["probabilities"]],
                                        {model.graph.input[0].name: gray})
    assert got_probs.shape == (1, *probs.shape) == (1, classes, 9, 27)
    assert np.abs(got_probs[0] - probs).max() < 1e-4
    assert np.abs(got_scores[0] - scores).max() < 1e-4


def test_the_onnx_export_keeps_a_nets_own_softmax(other_net):
    import onnxruntime as ort

    from conftest import plate_like
    from viewer.maps.export import surgered_onnx
    from viewer.maps.featuremap import DenseClassifier

    dense = DenseClassifier(other_net, "numpy")
    model = surgered_onnx(dense)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["probabilities"] == "prob" and [o.name for o in model.graph.output] == [
        dense.score_blob, "prob"]
    image = plate_like(45, 61, seed=5)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    data = np.repeat(image.astype(np.float32)[None, None], 3, axis=1)
    (probs,) = session.run(["prob"], {model.graph.input[0].name: data})
    assert np.abs(probs[0] - dense.run(image).probs).max() < 1e-4


def test_the_onnx_export_of_a_net_without_softmax_adds_one_and_says_what_it_needs(
        nonsquare_net, tmp_path):
    """Every metadata entry with its exact value, and the added softmax over the classes."""
    import onnx
    import onnxruntime as ort

    from conftest import plate_like
    from viewer.maps.export import save_onnx, surgered_onnx
    from viewer.maps.featuremap import DenseClassifier
    from viewer.maps.labels import labels_for
    from viewer.caffe.model_io import structure_of

    param = structure_of(nonsquare_net.param)
    del param.layer[-1]                                             # its Softmax
    nonsquare_net.param, nonsquare_net.source = param, "/models/nonsquare.prototxt"
    dense = DenseClassifier(nonsquare_net, "numpy")
    model = surgered_onnx(dense)
    assert [o.name for o in model.graph.output] == ["ip2-conv", "prob"]
    assert [(n.op_type, n.name, n.input, n.output) for n in model.graph.node][-1] == (
        "Softmax", "prob", ["ip2-conv"], ["prob"])
    assert [d.dim_value or d.dim_param for d in model.graph.output[1].type.tensor_type.shape.dim
            ] == ["", "", "", ""]                                   # rank 4, sizes open
    meta = {p.key: p.value for p in model.metadata_props}
    transformer = json.dumps({"channels": 2, "channel_swap": [], "raw_scale": 255.0,
                              "mean": [], "input_scale": 1.0})
    assert meta == {
        "stride": "[6, 4]", "offset": "[0, 0]", "window": "[23, 30]",
        "labels": json.dumps(labels_for(5)), "scores": "ip2-conv", "probabilities": "prob",
        "input": "data: N x 2 x H x W float32, the image resized by the chosen scale, then "
                 f"{dense.transformer.describe()} (Caffe's Transformer order: channel swap, raw "
                 "scale, mean, input scale)",
        "preprocessing": transformer, "source": "nonsquare.prototxt (fully convolutional)"}
    image = plate_like(41, 47, seed=2)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    data = np.repeat(image.astype(np.float32)[None, None], 2, axis=1)
    scores, probs = session.run(["ip2-conv", "prob"], {"data": data})
    expected = dense.run(image)
    assert np.abs(scores[0] - expected.scores).max() < 1e-4
    assert np.abs(probs[0] - expected.probs).max() < 1e-5
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)   # over the classes
    assert onnx.load(save_onnx(dense, tmp_path / "nonsquare.onnx")) == model


def test_the_npz_reports_its_progress_piece_by_piece(tmp_path, monkeypatch):
    from viewer import progress
    from viewer.maps import export

    monkeypatch.setattr(export, "NPZ_PIECE", 1000)
    arrays = {"a": np.arange(600, dtype=np.float32), "empty": np.zeros(0, np.float32),
              "b": np.arange(200.0).reshape(20, 10).T}             # 2400, 0 and 1600 bytes
    heard = []
    with open(tmp_path / "p.npz", "wb") as fh, progress.reporting(heard.append):
        export.write_npz(fh, arrays)
    assert heard == [1000 / 4000, 2000 / 4000, 2400 / 4000, 3400 / 4000, 1.0]
    with zipfile.ZipFile(tmp_path / "p.npz") as archive:
        # compressed, and zip64 throughout: an entry over 2 GiB must not fail after the rest
        assert {(i.compress_type, i.extract_version) for i in archive.infolist()} == {
            (zipfile.ZIP_DEFLATED, zipfile.ZIP64_VERSION)}
    with np.load(tmp_path / "p.npz") as npz:
        assert npz.files == ["a", "empty", "b"]
        np.testing.assert_array_equal(npz["a"], arrays["a"])
        assert npz["empty"].shape == (0,) and npz["b"].dtype == np.float64
        np.testing.assert_array_equal(npz["b"], arrays["b"])       # in order though transposed


def test_pictures_are_written_as_png_in_their_colours(tmp_path):
    from PIL import Image

    from viewer.maps.export import save_png

    rgb = np.zeros((3, 4, 3), np.uint8)
    rgb[..., 0], rgb[1, 2] = 200, (10, 20, 30)                      # red, one other pixel
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    for picture, mode in ((rgb, "RGB"), (gray, "L")):
        path = save_png(picture, tmp_path / f"{mode}.png")
        with Image.open(path) as png:
            assert (png.format, png.mode) == ("PNG", mode)
            np.testing.assert_array_equal(np.asarray(png), picture)


def test_no_export_writes_over_one_of_its_inputs(tmp_path, other_net):
    from viewer.errors import ViewerError
    from viewer.maps.export import save_onnx, save_png
    from viewer.maps.featuremap import DenseClassifier

    image = tmp_path / "photo.png"
    image.write_bytes(b"the user's photo")
    fm = FeatureMap(np.zeros((2, 1, 1), np.float32), np.ones((2, 1, 1), np.float32) / 2, None,
                    ["a", "b"], Geometry((4, 4), (0, 0), (28, 28), (1.0, 1.0)), (28, 28), 1.0,
                    1.0)
    for save in (lambda: save_npz(fm, image, (image,)),
                 lambda: save_png(np.zeros((2, 2), np.uint8), image, (image,)),
                 lambda: save_onnx(DenseClassifier(other_net, "numpy"), image, (image,))):
        with pytest.raises(ViewerError) as err:
            save()
        assert str(err.value) == (f"refusing to overwrite the input file {image}: choose "
                                  "another output")
    assert image.read_bytes() == b"the user's photo"
