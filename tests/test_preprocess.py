"""Caffe's preprocessing (viewer/maps/preprocess.py): the Transformer's steps and order, mean files,
a train_val net's transform_param, the sidecar `surgery --out` writes, and the flags' errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import OTHER_NET, plate_like, random_biases
from viewer.net.weights import init_weights, load_net
from viewer.caffe import model_io
from viewer.files import paths
from viewer.cli import main
from viewer.maps.featuremap import DenseClassifier
from viewer.maps.labels import read_labels
from viewer.caffe.model_io import array_to_blob
from viewer.maps.preprocess import ModelSettings, Transformer, parse_overrides, read_sidecar, read_train_transform, settings_for, sidecar_path
from viewer.errors import PreprocessError

# One pixel per RGB primary and a gray one, so every channel of the result is identifiable.
PIXELS = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]], np.uint8)


def test_default_for_colour_nets_is_bgr_pixels_0_to_255():
    data = Transformer.default_for(3).prepare(PIXELS, 1.0)
    assert data.shape == (1, 3, 2, 2) and data.dtype == np.float32
    np.testing.assert_array_equal(data[0, :, 1, 1], [30, 20, 10])      # B, G, R
    np.testing.assert_array_equal(data[0, 2], [[255, 0], [0, 10]])     # channel 2 is red


def test_default_for_gray_nets_is_gray_0_to_255():
    data = Transformer.default_for(1).prepare(PIXELS, 1.0)
    assert data.shape == (1, 1, 2, 2)
    # ITU-R 601: 0.299 R + 0.587 G + 0.114 B, rounded by OpenCV
    np.testing.assert_array_equal(data[0, 0], [[76, 150], [29, 18]])


def test_steps_run_in_caffes_order_swap_raw_scale_mean_input_scale():
    t = Transformer(3, (2, 0, 1), raw_scale=1.0, mean=(0.5, 0.25, 0.125), input_scale=4.0)
    data = t.prepare(PIXELS, 1.0)[0]
    rgb = PIXELS.transpose(2, 0, 1).astype(np.float64) / 255.0
    expected = (rgb[[2, 0, 1]] - np.array([0.5, 0.25, 0.125])[:, None, None]) * 4.0
    np.testing.assert_allclose(data, expected, atol=1e-6)


def test_the_image_is_resized_before_the_steps():
    image = np.dstack([np.full((40, 60), v, np.uint8) for v in (200, 100, 50)])
    data = Transformer(3, (2, 1, 0), mean=(1, 2, 3)).prepare(image, 0.5)
    assert data.shape == (1, 3, 20, 30)
    np.testing.assert_array_equal(data[0, :, 0, 0], [49, 98, 197])


def test_a_colour_net_sees_the_colours_of_the_image():
    param, _ = model_io.parse_prototxt(OTHER_NET, "other.prototxt")
    dense = DenseClassifier(random_biases(init_weights(param, 3), 3), "numpy")
    red = np.zeros((40, 40, 3), np.uint8)
    red[..., 0] = 255
    data = dense.prepare(red, 1.0)
    np.testing.assert_array_equal(data[0, :, 5, 5], [0, 0, 255])
    assert dense.transformer == Transformer(3, (2, 1, 0))


@pytest.mark.parametrize("kwargs, flag", [
    (dict(mean=(1.0, 2.0)), "--mean has 2 value"),
    (dict(channel_swap=(0, 0, 1)), "--channel-swap 0,0,1 is not a permutation"),
    (dict(channel_swap=(0, 1, 3)), "--channel-swap 0,1,3 is not a permutation"),
    (dict(raw_scale=0.0), "--raw-scale must be a positive number"),
    (dict(input_scale=-1.0), "--input-scale must be a positive number"),
])
def test_settings_that_cannot_apply_name_their_flag(kwargs, flag):
    with pytest.raises(PreprocessError, match=flag):
        Transformer(3, **{"channel_swap": (2, 1, 0), **kwargs})


def test_mean_files_are_reduced_to_per_channel_means(tmp_path):
    image = np.stack([np.full((4, 5), v, np.float32) for v in (104, 117, 123)])
    image[0, 0, 0] += 20    # the mean of channel 0 becomes 105
    npy, proto = tmp_path / "mean.npy", tmp_path / "mean.binaryproto"
    np.save(npy, image)
    proto.write_bytes(array_to_blob(image[None]).SerializeToString())
    for path in (npy, proto):
        np.testing.assert_allclose(parse_overrides(mean=str(path)).mean, (105, 117, 123))
    assert parse_overrides(mean="104,117.5,123").mean == (104, 117.5, 123)
    assert parse_overrides(input_scale="1/256").input_scale == 1 / 256


def test_a_damaged_mean_file_names_the_flag(tmp_path):
    bad = tmp_path / "mean.binaryproto"
    bad.write_bytes(b"\xff\xff not a blob")
    with pytest.raises(PreprocessError, match="--mean .*mean.binaryproto"):
        parse_overrides(mean=str(bad))


def test_train_prototxt_gives_scale_and_mean_of_the_test_data_layer(tmp_path):
    np.save(tmp_path / "mean.npy", np.full((3, 2, 2), 7.0))
    (tmp_path / "train_val.prototxt").write_text("""
layer { name: "train" type: "Data" top: "data" include { phase: TRAIN }
        transform_param { scale: 0.5 mean_value: 1 mean_value: 2 mean_value: 3 } }
layer { name: "test" type: "Data" top: "data" include { phase: TEST }
        transform_param { scale: 0.25 mean_file: "mean.npy" } }
""")
    train = read_train_transform(tmp_path / "train_val.prototxt")
    assert (train.input_scale, train.mean, train.layer) == (0.25, (7.0, 7.0, 7.0), "test")
    t = parse_overrides(train_prototxt=tmp_path / "train_val.prototxt",
                        raw_scale="1").apply(Transformer.default_for(3))
    assert t == Transformer(3, (2, 1, 0), 1.0, (7.0, 7.0, 7.0), 0.25)


def test_caffes_mnist_lenet_train_net_gives_the_input_scale():
    t = parse_overrides(train_prototxt=paths.MODELS / "lenet_train_test.prototxt").apply(
        Transformer.default_for(1))
    assert t == Transformer(1, (), 255.0, (), 0.00390625)


def test_labels_beside_the_model_and_synset_words(tmp_path):
    proto = tmp_path / "net.prototxt"
    (tmp_path / "synset_words.txt").write_text("n01440764 tench, Tinca tinca\n"
                                               "n02123045 tabby, tabby cat\n\n")
    assert read_labels(tmp_path / "synset_words.txt") == ["tench, Tinca tinca",
                                                          "tabby, tabby cat"]
    settings = settings_for(proto, 3, 2)
    assert settings.labels == ("tench, Tinca tinca", "tabby, tabby cat") and not settings.notes
    wrong = settings_for(proto, 3, 5)
    assert wrong.labels == () and "has 2 names but the net has 5 classes" in wrong.notes[0]


def test_settings_for_reads_the_sidecar_and_flags_win(tmp_path):
    proto = tmp_path / "net_fullconv.prototxt"
    sidecar_path(proto).write_text(json.dumps({
        "format": "netsurgery-preprocess/1", "channels": 3, "channel_swap": [2, 1, 0],
        "raw_scale": 255, "mean": [1, 2, 3], "input_scale": 0.5, "labels": ["a", "b"]}))
    stored = settings_for(proto, 3, 2)
    assert stored == ModelSettings(Transformer(3, (2, 1, 0), 255.0, (1, 2, 3), 0.5), ("a", "b"))
    flagged = settings_for(proto, 3, 2, parse_overrides(mean="9", input_scale="1"))
    assert flagged.transformer == Transformer(3, (2, 1, 0), 255.0, (9, 9, 9), 1.0)
    sidecar_path(proto).write_text('{"format": "something else"}')
    with pytest.raises(PreprocessError, match="net_fullconv.preprocess.json is not a "
                                              "preprocessing sidecar"):
        read_sidecar(sidecar_path(proto))


@pytest.fixture
def colour_files(tmp_path, other_net):
    proto, weights = tmp_path / "other.prototxt", tmp_path / "other.caffemodel"
    model_io.write_net(other_net, proto, weights)
    image = tmp_path / "photo.png"
    rng = np.random.default_rng(4)
    Image.fromarray(rng.integers(0, 256, (48, 56, 3), dtype=np.uint8)).save(image)
    return proto, weights, image


def test_surgery_writes_the_settings_and_map_uses_them(colour_files, tmp_path, capsys):
    proto, weights, image = colour_files
    flags = ["--mean", "104,117,123", "--input-scale", "0.017", "--channel-swap", "2,0,1"]
    assert main(["surgery", "--prototxt", str(proto), "--weights", str(weights),
                 "--out", str(tmp_path / "fcn"), "--engine", "numpy", *flags]) == 0
    assert "max |diff|" in capsys.readouterr().out
    fcn = tmp_path / "fcn" / "other_fullconv.prototxt"
    assert read_sidecar(sidecar_path(fcn)).transformer == \
        Transformer(3, (2, 0, 1), 255.0, (104, 117, 123), 0.017)
    common = ["map", str(image), "--engine", "numpy", "--json"]
    assert main([*common, "--prototxt", str(fcn), "--weights", str(fcn.with_suffix(
        ".caffemodel")), "--out", str(tmp_path / "stored")]) == 0
    assert main([*common, "--prototxt", str(proto), "--weights", str(weights),
                 "--out", str(tmp_path / "given"), *flags]) == 0
    assert main([*common, "--prototxt", str(proto), "--weights", str(weights),
                 "--out", str(tmp_path / "default")]) == 0
    stored, given, default = (np.load(tmp_path / name / "featuremap.npz")["scores"]
                              for name in ("stored", "given", "default"))
    np.testing.assert_allclose(stored, given, atol=1e-4)
    assert np.abs(stored - default).max() > 0.01


@pytest.mark.parametrize("flags, message", [
    (["--mean", "1,2"], "error: --mean has 2 value(s) but the net has 3 input channel(s)"),
    (["--channel-swap", "0,1,1"], "error: --channel-swap 0,1,1 is not a permutation"),
    (["--channel-swap", "b,g,r"], "error: --channel-swap 'b,g,r' is not a list"),
    (["--raw-scale", "0"], "error: --raw-scale must be a positive number, got 0"),
    (["--input-scale=-0.5"], "error: --input-scale must be a positive number, got -0.5"),
])
def test_bad_preprocessing_is_one_line_naming_the_flag_and_writes_nothing(
        colour_files, tmp_path, capsys, flags, message):
    proto, weights, image = colour_files
    for command in (["map", str(image)], ["surgery"]):
        out = tmp_path / command[0]
        assert main([*command, "--prototxt", str(proto), "--weights", str(weights),
                     "--out", str(out), *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1, err
        assert not out.exists()


def test_a_labels_file_of_the_wrong_length_warns_and_numbers_the_classes(colour_files,
                                                                         tmp_path, capsys):
    proto, weights, image = colour_files
    (tmp_path / "names.txt").write_text("cat\ndog\n")
    assert main(["map", str(image), "--prototxt", str(proto), "--weights", str(weights),
                 "--labels", str(tmp_path / "names.txt"), "--out", str(tmp_path / "out"),
                 "--engine", "numpy"]) == 0
    assert capsys.readouterr().err == (f"warning: {tmp_path / 'names.txt'} has 2 names but the "
                                       "net has 5 classes; classes are numbered instead\n")
    labels = np.load(tmp_path / "out" / "featuremap.npz")["labels"]
    assert list(labels) == [f"class {k}" for k in range(5)]


def test_the_bundled_lenet_keeps_gray_input_and_its_power_layer():
    dense = DenseClassifier(load_net(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS), "numpy")
    assert dense.transformer == Transformer(1)
    image = plate_like(30, 40)
    np.testing.assert_array_equal(dense.prepare(image, 1.0)[0, 0], image)


def test_the_onnx_export_says_how_to_prepare_its_input(other_net):
    from viewer.maps.export import surgered_onnx

    t = Transformer(3, (2, 1, 0), 255.0, (104, 117, 123), 0.5)
    model = surgered_onnx(DenseClassifier(other_net, "numpy", settings=ModelSettings(t)))
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["preprocessing"]) == t.as_dict()
    assert "BGR (swap 2,1,0), raw scale 255, mean 104,117,123, input scale 0.5" in meta["input"]
