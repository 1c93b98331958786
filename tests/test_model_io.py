"""Model files: prototxt and caffemodel round trips, legacy forms, and clear errors."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from viewer.net.weights import init_weights, load_net
from viewer.caffe import model_io
from viewer.net import netgraph
from viewer.errors import ModelError, ViewerError
from viewer.caffe.proto import caffe_pb2

NETS = Path(__file__).resolve().parent / "nets"


def test_caffemodel_round_trip_keeps_every_weight(lenet, tmp_path):
    proto, weights = tmp_path / "a.prototxt", tmp_path / "a.caffemodel"
    model_io.write_net(lenet, proto, weights)
    back = load_net(proto, weights)
    assert set(back.weights) == {"conv1", "conv2", "ip1", "ip2-alpha"}
    for name, blobs in lenet.weights.items():
        for a, b in zip(blobs, back.weights[name]):
            assert a.shape == b.shape
            np.testing.assert_array_equal(a, b)


def test_prototxt_round_trip_is_identical(other_net):
    text = model_io.prototxt_text(other_net.param)
    again, warnings = model_io.parse_prototxt(text)
    assert warnings == []
    assert again == other_net.param


def test_written_caffemodel_is_a_plain_netparameter(lenet, tmp_path):
    model_io.write_net(lenet, tmp_path / "n.prototxt", tmp_path / "n.caffemodel")
    raw = caffe_pb2.NetParameter.FromString((tmp_path / "n.caffemodel").read_bytes())
    ip1 = next(layer for layer in raw.layer if layer.name == "ip1")
    assert list(ip1.blobs[0].shape.dim) == [500, 800]
    assert len(ip1.blobs[0].data) == 400_000


def test_legacy_blob_dimensions_are_read_and_fitted(lenet, tmp_path):
    full = model_io.to_netparameter(lenet)
    for layer in full.layer:
        for blob in layer.blobs:
            dims = list(blob.shape.dim)
            blob.ClearField("shape")
            padded = [1] * (4 - len(dims)) + dims
            blob.num, blob.channels, blob.height, blob.width = padded
    (tmp_path / "old.caffemodel").write_bytes(full.SerializeToString())
    raw = model_io.read_caffemodel(tmp_path / "old.caffemodel")
    ip1 = next(layer for layer in raw.layer if layer.name == "ip1")
    assert model_io.blob_to_array(ip1.blobs[0]).shape == (1, 1, 500, 800)
    model_io.write_net(lenet, tmp_path / "old.prototxt", tmp_path / "unused.caffemodel")
    net = load_net(tmp_path / "old.prototxt", tmp_path / "old.caffemodel")
    assert net.weights["ip1"][0].shape == (500, 800)
    assert net.weights["ip1"][1].shape == (500,)
    np.testing.assert_array_equal(net.weights["ip1"][0], lenet.weights["ip1"][0])


def test_legacy_input_dim_and_input_shape_declarations():
    old, _ = model_io.parse_prototxt(
        'input: "data" input_dim: 1 input_dim: 1 input_dim: 28 input_dim: 28')
    assert netgraph.input_shapes(old) == {"data": (1, 1, 28, 28)}
    newer, _ = model_io.parse_prototxt(
        'input: "data" input_shape { dim: 2 dim: 3 dim: 40 dim: 50 }')
    assert netgraph.input_shapes(newer) == {"data": (2, 3, 40, 50)}


def test_v1_layers_are_upgraded():
    text = """
    name: "Old" input: "data" input_dim: 1 input_dim: 1 input_dim: 8 input_dim: 8
    layers { name: "c" type: CONVOLUTION bottom: "data" top: "c"
             convolution_param { num_output: 2 kernel_size: 3 } }
    layers { name: "r" type: RELU bottom: "c" top: "c" }
    layers { name: "fc" type: INNER_PRODUCT bottom: "c" top: "fc"
             inner_product_param { num_output: 4 } }
    """
    net, _ = model_io.parse_prototxt(text)
    assert [(l.name, l.type) for l in net.layer] == [
        ("c", "Convolution"), ("r", "ReLU"), ("fc", "InnerProduct")]
    assert net.layer[0].convolution_param.num_output == 2
    assert netgraph.infer_shapes(net)["fc"] == (1, 4)


_V1_LAYERS = """
    layers { name: "c" type: CONVOLUTION bottom: "data" top: "c"
             convolution_param { num_output: 4 kernel_h: 3 kernel_w: 2 stride_h: 2 pad_w: 1
                                 group: 2 bias_term: false } }
    layers { name: "r" type: RELU bottom: "c" top: "c" relu_param { negative_slope: 0.25 } }
    layers { name: "p" type: POOLING bottom: "c" top: "p"
             pooling_param { pool: AVE kernel_h: 2 kernel_w: 3 stride: 2 } }
    layers { name: "n" type: LRN bottom: "p" top: "n"
             lrn_param { local_size: 3 alpha: 0.5 beta: 0.5 norm_region: WITHIN_CHANNEL } }
    layers { name: "w" type: POWER bottom: "n" top: "w"
             power_param { power: 2 scale: 0.5 shift: -1 } }
    layers { name: "d" type: DROPOUT bottom: "w" top: "w" dropout_param { dropout_ratio: 0.3 } }
    layers { name: "j" type: CONCAT bottom: "w" bottom: "p" top: "j"
             concat_param { axis: 1 } }
    layers { name: "f" type: FLATTEN bottom: "j" top: "f" }
    layers { name: "fc" type: INNER_PRODUCT bottom: "f" top: "fc"
             inner_product_param { num_output: 5 transpose: true } }
    layers { name: "s" type: SOFTMAX bottom: "fc" top: "s" softmax_param { axis: 1 } }
"""


def test_v1_layers_keep_every_parameter_through_the_upgrade():
    """Each old type becomes the modern layer a hand-written prototxt gives, field for field."""
    header = 'name: "Old" input: "data" input_dim: 1 input_dim: 2 input_dim: 9 input_dim: 12\n'
    old, _ = model_io.parse_prototxt(header + _V1_LAYERS)
    modern_text = _V1_LAYERS.replace("layers {", "layer {")
    for v1, new in (("CONVOLUTION", "Convolution"), ("RELU", "ReLU"), ("POOLING", "Pooling"),
                    ("LRN", "LRN"), ("POWER", "Power"), ("DROPOUT", "Dropout"),
                    ("CONCAT", "Concat"), ("FLATTEN", "Flatten"),
                    ("INNER_PRODUCT", "InnerProduct"), ("SOFTMAX", "Softmax")):
        modern_text = modern_text.replace(f"type: {v1} ", f'type: "{new}" ')
    modern, _ = model_io.parse_prototxt(header + modern_text)
    assert len(old.layer) == 10 and not len(old.layers)
    for got, want in zip(old.layer, modern.layer, strict=True):
        assert got == want, f"{want.name}: {got} != {want}"
    assert old.layer[4].power_param.power == 2


def test_an_unknown_field_is_refused_as_caffe_refuses_it_naming_line_layer_and_nearest():
    text = """
    input: "data" input_dim: 1 input_dim: 1 input_dim: 8 input_dim: 8
    layer { name: "c" type: "Convolution" bottom: "data" top: "c"
            shiny_new_option: 3
            convolution_param { num_output: 2 kernel_size: 3 stide: 2 } }
    """
    with pytest.raises(ModelError) as err:
        model_io.parse_prototxt(text, "my.prototxt")
    assert str(err.value) == (
        "my.prototxt: 2 fields Caffe does not know: line 4 (in layer 'c'): no field named "
        "'shiny_new_option' in LayerParameter; line 5 (in layer 'c'): no field named 'stide' "
        "in ConvolutionParameter (did you mean stride?)")


def test_every_misspelled_field_of_a_squeezenet_is_named_with_the_field_meant():
    text = (NETS / "squeezenet_fire.prototxt").read_text()
    typos = text.replace("stride: 2", "stide: 2", 1).replace("num_output: 16", "num_ouput: 16", 1)
    typos = typos.replace('name: "data"', 'name: "data" extra { a: 1 nested { b: 2 } }', 1)
    with pytest.raises(ModelError) as err:
        model_io.parse_prototxt(typos, "sq.prototxt")
    assert str(err.value) == (
        "sq.prototxt: 3 fields Caffe does not know: line 6 (in layer 'data'): no field named "
        "'extra' in LayerParameter; line 9 (in layer 'conv1'): no field named 'num_ouput' in "
        "ConvolutionParameter (did you mean num_output?); line 9 (in layer 'conv1'): no field "
        "named 'stide' in ConvolutionParameter (did you mean stride?)")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("raw, message", [
    ("\ufeffname: 'x'".encode("utf-8"),
     "starts with a byte-order mark, which Caffe cannot read: save it as UTF-8 without BOM"),
    ("name: 'x'".encode("utf-16"), "is UTF-16 text; Caffe reads a prototxt as UTF-8: save it "
                                   "as UTF-8"),
    ("name: 'x'".encode("utf-16-le"), "is UTF-16 text; Caffe reads a prototxt as UTF-8: save "
                                      "it as UTF-8"),
])
def test_a_bom_or_utf16_prototxt_is_named_for_what_it_is(tmp_path, raw, message):
    path = tmp_path / "net.prototxt"
    path.write_bytes(raw)
    with pytest.raises(ModelError) as err:
        model_io.read_prototxt(path)
    assert str(err.value) == f"{path} {message}"


def test_syntax_error_reports_line_and_layer():
    text = 'name: "x"\nlayer {\n  name: "conv9"\n  type: "Convolution"\n  bottom "data"\n}\n'
    with pytest.raises(ModelError, match=r"bad.prototxt line 5 \(in layer 'conv9'\)"):
        model_io.parse_prototxt(text, "bad.prototxt")


def test_unknown_layer_type_is_named():
    net, _ = model_io.parse_prototxt("""
    input: "data" input_dim: 1 input_dim: 1 input_dim: 8 input_dim: 8
    layer { name: "warp" type: "SpatialTransformer" bottom: "data" top: "w" }""")
    with pytest.raises(ModelError, match=r"'warp' \(SpatialTransformer\)"):
        netgraph.deploy_layers(net)


def test_shape_mismatch_names_layer_and_both_shapes(lenet, tmp_path):
    model_io.write_net(lenet, tmp_path / "a.prototxt", tmp_path / "a.caffemodel")
    text = (tmp_path / "a.prototxt").read_text().replace("num_output: 500", "num_output: 400")
    (tmp_path / "b.prototxt").write_text(text)
    with pytest.raises(ModelError) as err:
        load_net(tmp_path / "b.prototxt", tmp_path / "a.caffemodel")
    assert "'ip1'" in str(err.value)
    assert "(400, 800)" in str(err.value) and "(500, 800)" in str(err.value)


def test_truncated_caffemodel_is_a_clear_error(lenet_files, tmp_path):
    proto, weights = lenet_files
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(weights.read_bytes()[:100_000])
    with pytest.raises(ModelError, match="cut.caffemodel"):
        load_net(proto, cut)


def test_train_phase_data_layers_are_left_out_of_the_deploy_net():
    net, _ = model_io.parse_prototxt("""
    layer { name: "train" type: "Data" top: "data" top: "label" include { phase: TRAIN }
            data_param { source: "train_lmdb" backend: LMDB batch_size: 64 } }
    layer { name: "in" type: "Input" top: "data" include { phase: TEST }
            input_param { shape { dim: 1 dim: 1 dim: 28 dim: 28 } } }
    layer { name: "c" type: "Convolution" bottom: "data" top: "c"
            convolution_param { num_output: 2 kernel_size: 5 } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "c" bottom: "label" top: "loss" }
    """)
    assert [l.name for l in netgraph.deploy_layers(net)] == ["in", "c"]
    assert netgraph.infer_shapes(net)["c"] == (1, 2, 24, 24)


def test_absurd_declared_size_is_refused_before_allocating():
    net, _ = model_io.parse_prototxt(
        'input: "data" input_dim: 1 input_dim: 1000 input_dim: 1000000 input_dim: 1000')
    with pytest.raises(ModelError, match="too large"):
        netgraph.input_shapes(net)


def _blob(shape, data=(), double=()):
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(shape)
    blob.data.extend(data)
    blob.double_data.extend(double)
    return blob


@pytest.mark.parametrize("blob, message", [
    (_blob([2, -1]), "blob has a negative dimension (2x-1)"),
    (_blob([2 ** 31 + 1]), "blob declares 2147483649 elements (2147483649), more than this "
                           "viewer loads"),
    (_blob([2 ** 31]), "blob has 0 values but its shape (2147483648,) needs 2147483648 (is the "
                       "file truncated?)"),
    (_blob([2, 2], [1, 2, 3]), "blob has 3 values but its shape (2, 2) needs 4 (is the file "
                               "truncated?)"),
    (_blob([3], double=[1e300, float("nan"), 1]),
     "blob holds 2 NaN or infinite values (weights of a diverged training, or a damaged file)"),
])
def test_a_damaged_blob_is_refused_with_its_exact_message(blob, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")             # a float32 overflow is refused, not warned
        with pytest.raises(ModelError) as err:
            model_io.blob_to_array(blob)
    assert str(err.value) == message


def test_blobs_decode_as_float32_from_float_or_double_values_and_may_be_empty():
    floats = model_io.blob_to_array(_blob([2, 1], [0.5, -2]))
    doubles = model_io.blob_to_array(_blob([2], double=[1.5, 1e-3]))
    empty = model_io.blob_to_array(_blob([0, 3]))
    assert [a.dtype for a in (floats, doubles, empty)] == [np.float32] * 3
    assert floats.tolist() == [[0.5], [-2.0]] and doubles.tolist() == [1.5, np.float32(1e-3)]
    assert empty.shape == (0, 3)


BROKEN_NET = 'name: "Net"\ninput: data\nlayer { name: "a" type: "ReLU" }\n'


@pytest.mark.parametrize("text, message", [
    # outside any layer: no layer is named, even the net's name before it
    (BROKEN_NET, "bad.prototxt line 2: 'input: data': Expected string but found: 'data'"),
    ('layer {\n  name: "first"\n  top: 3x\n}\nlayer {\n  name: "second"\n}\n',
     "bad.prototxt line 3 (in layer 'first'): '  top: 3x': Expected string but found: '3x'"),
])
def test_a_syntax_error_names_the_line_and_only_the_layer_it_is_in(text, message):
    with pytest.raises(ModelError) as err:
        model_io.parse_prototxt(text, "bad.prototxt")
    assert str(err.value) == message


def test_an_unknown_field_is_named_with_its_message_type():
    text = ('input: "data" input_dim: 1 input_dim: 1 input_dim: 8 input_dim: 8\n'
            'layer { name: "c" type: "ReLU" bottom: "data" top: "data"\n'
            '        relu_param { shiny: 3 } }\n')
    with pytest.raises(ModelError) as err:
        model_io.parse_prototxt(text, "my.prototxt")
    assert str(err.value) == "my.prototxt line 3 (in layer 'c'): no field named 'shiny' in " \
                             "ReLUParameter"


def test_model_files_that_cannot_be_read_are_named_with_the_reason(tmp_path, monkeypatch):
    missing = tmp_path / "missing.prototxt"
    for read, what in ((model_io.read_prototxt, "prototxt"),
                       (model_io.read_caffemodel, "caffemodel")):
        with pytest.raises(ModelError) as err:
            read(missing)
        assert str(err.value) == f"cannot read {what} {missing}: No such file or directory"
    binary = tmp_path / "net.prototxt"
    binary.write_bytes(b"\xff\xfe name")
    with pytest.raises(ModelError) as err:
        model_io.read_prototxt(binary)
    assert str(err.value) == (f"{binary} is not a text prototxt (it holds binary data: a "
                              ".caffemodel given as --prototxt?)")
    binary.write_text(BROKEN_NET)
    with pytest.raises(ModelError) as err:
        model_io.read_prototxt(binary)
    assert str(err.value) == f"{binary} line 2: 'input: data': Expected string but found: 'data'"
    big = tmp_path / "big"
    big.write_bytes(b"name: 'x'" * 4)
    monkeypatch.setattr(model_io, "MAX_PROTOTXT_BYTES", 10)
    monkeypatch.setattr(model_io, "MAX_CAFFEMODEL_BYTES", 10)
    for read, what in ((model_io.read_prototxt, "prototxt"),
                       (model_io.read_caffemodel, "caffemodel")):
        with pytest.raises(ModelError) as err:
            read(big)
        assert str(err.value) == (f"cannot read {what} {big}: it is over 1 MB, larger than any "
                                  f"{what} this viewer reads")


def _tiny_caffemodel(**blob) -> bytes:
    """A caffemodel whose bytes are all below 0x80 (so they decode as UTF-8): one old-format
    layer (field 2; the modern `layer` is field 100, whose tag is not ASCII)."""
    net = caffe_pb2.NetParameter()
    net.layers.add(name="s", type=caffe_pb2.V1LayerParameter.RELU).blobs.append(
        _blob([1], **blob))
    return net.SerializeToString()


@pytest.mark.parametrize("data, message", [
    (b"", "<caffemodel> is empty (0 bytes): download or copy the caffemodel again"),
    (b'name: "LeNet"\n', "<caffemodel> is a text file, not a binary caffemodel (a .prototxt "
                         "given as --weights?)"),
    (caffe_pb2.NetParameter(name="x", layer=[caffe_pb2.LayerParameter(name="a")])
     .SerializeToString(), "<caffemodel> holds no weights: not a caffemodel, or an empty one"),
    (caffe_pb2.NetParameter(layer=[caffe_pb2.LayerParameter(name="a")],
                            layers=[caffe_pb2.V1LayerParameter(name="b")]).SerializeToString(),
     "<caffemodel> mixes old 'layers' and new 'layer' entries"),
])
def test_bytes_that_are_no_caffemodel_are_refused_with_the_reason(data, message):
    with pytest.raises(ModelError) as err:
        model_io.parse_caffemodel(data)
    assert str(err.value) == message


def test_a_caffemodel_of_ascii_bytes_is_still_binary():
    data = _tiny_caffemodel(data=[0.0])
    assert max(data) < 0x80 and b"\x00" in data
    net = model_io.parse_caffemodel(data, "tiny.caffemodel")
    assert model_io.weights_of(net, "tiny.caffemodel")["s"][0].tolist() == [0.0]
    damaged = model_io.parse_caffemodel(_tiny_caffemodel(data=[0.0, 1.0]), "tiny.caffemodel")
    with pytest.raises(ModelError) as err:
        model_io.weights_of(damaged, "tiny.caffemodel")
    assert str(err.value) == ("tiny.caffemodel: layer 's' blob 0 has 2 values but its shape (1,) "
                              "needs 1 (is the file truncated?)")


def test_load_net_names_its_files_and_refuses_an_unknown_field(lenet, tmp_path):
    proto, weights = tmp_path / "a.prototxt", tmp_path / "a.caffemodel"
    model_io.write_net(lenet, proto, weights)
    net = load_net(proto, weights)
    assert net.source == str(proto) and net.warnings == []
    good = proto.read_text()
    proto.write_text(good.replace('name: "conv1"', 'name: "conv1"\n  shiny: 1', 1))
    with pytest.raises(ModelError, match=f"{proto} line 26 \\(in layer 'conv1'\\): no field named "
                                         "'shiny' in LayerParameter"):
        load_net(proto, weights)
    proto.write_text(good)
    with pytest.raises(ModelError) as err:
        load_net(proto, None)
    assert str(err.value) == f"{proto} has no weights for layer 'conv1'"
    partial = model_io.to_netparameter(lenet)
    conv1 = next(layer for layer in partial.layer if layer.name == "conv1")
    del conv1.blobs[:]                                # conv1's weights left out
    weights.write_bytes(partial.SerializeToString())
    with pytest.raises(ModelError) as err:
        load_net(proto, weights)
    assert str(err.value) == f"{weights} has no weights for layer 'conv1'"
    conv1.blobs.append(_blob([1, 2], [1.0]))
    weights.write_bytes(partial.SerializeToString())
    with pytest.raises(ModelError) as err:
        load_net(proto, weights)
    assert str(err.value) == (f"{weights}: layer 'conv1' blob 0 has 1 values but its shape "
                              "(1, 2) needs 2 (is the file truncated?)")


def test_write_net_never_writes_over_one_of_its_inputs(lenet, tmp_path):
    proto, weights = tmp_path / "a.prototxt", tmp_path / "a.caffemodel"
    proto.write_text("the user's prototxt")
    with pytest.raises(ViewerError) as err:
        model_io.write_net(lenet, proto, weights, inputs=(proto,))
    assert str(err.value) == f"refusing to overwrite the input file {proto}: choose another output"
    assert proto.read_text() == "the user's prototxt" and not weights.exists()


def test_initial_weights_are_seeded_with_0_by_default(other_net):
    first, again = init_weights(other_net.param), init_weights(other_net.param)
    seeded = init_weights(other_net.param, seed=0)
    for name, blobs in seeded.weights.items():
        for a, b, c in zip(first.weights[name], again.weights[name], blobs, strict=True):
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(b, c)
    assert not np.array_equal(seeded.weights["fc1"][0],
                              init_weights(other_net.param, seed=1).weights["fc1"][0])


INIT_NET = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 40 kernel_size: 3 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "prelu" type: "PReLU" bottom: "conv" top: "conv" }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc"
        inner_product_param { num_output: 30 transpose: true } }
"""


def test_initial_weights_are_xavier_uniform_with_caffes_neutral_starts():
    param, _ = model_io.parse_prototxt(INIT_NET)
    net = init_weights(param, seed=4)
    assert net.source == "<initialised>" and net.param == param
    w = net.weights
    assert {k: [a.shape for a in v] for k, v in w.items()} == {
        "conv": [(40, 3, 3, 3), (40,)], "bn": [(40,), (40,), (1,)], "scale": [(40,), (40,)],
        "prelu": [(40,)], "fc": [(1440, 30), (30,)]}
    assert all(a.dtype == np.float32 for v in w.values() for a in v)
    # Xavier: uniform in +-sqrt(3 / fan_in), fan_in being the inputs of one output
    for name, fan_in in (("conv", 3 * 3 * 3), ("fc", 40 * 6 * 6)):
        limit = np.sqrt(3.0 / fan_in)
        assert 0.95 * limit < np.abs(w[name][0]).max() <= limit, name
        assert w[name][0].min() < 0 < w[name][0].max()
        assert not w[name][1].any()                                   # zero biases
    assert (w["bn"][0].tolist(), w["bn"][1].tolist(), w["bn"][2].tolist()) == (
        [0.0] * 40, [1.0] * 40, [1.0])
    assert w["prelu"][0].tolist() == [0.25] * 40


def test_weights_too_large_to_initialise_are_refused():
    param, _ = model_io.parse_prototxt(INIT_NET.replace("num_output: 30", "num_output: 1500000"))
    with pytest.raises(ModelError) as err:
        init_weights(param)
    assert str(err.value) == ("layer 'fc' would need weights of shape (1440, 1500000): too large "
                              "to initialise")


@pytest.mark.parametrize("text, message", [
    ("\x00\x01", "<prototxt> is not a text prototxt (it holds binary data: a .caffemodel given "
                 "as --prototxt?)"),
    # an unknown field is named before any later syntax error
    ('layer { name: "x" shiny: 1 }\nlayer {\n  name: "y"\n  top: 3x }',
     "<prototxt> line 1 (in layer 'x'): no field named 'shiny' in LayerParameter"),
    # protobuf gives this error no line: nothing names a line or a layer
    ('layer {\n  name: "x"\n  shiny: ]\n}\n',
     "<prototxt> line 3 (in layer 'x'): no field named 'shiny' in LayerParameter"),
    # an unknown field is refused before its blocks are read, however deep they nest
    ("shiny " + "{ a " * 3000, "<prototxt> line 1: no field named 'shiny' in NetParameter"),
    ('layer { name: "a" } layers { name: "b" }',
     "<prototxt> mixes old 'layers' and new 'layer' entries"),
    ('layers { name: "d" type: HDF5_DATA }',
     "<prototxt>: old-format layer 'd' has type HDF5_DATA, which this viewer cannot upgrade"),
])
def test_prototxt_text_that_is_no_net_is_refused_with_the_reason(text, message):
    with pytest.raises(ModelError) as err:
        model_io.parse_prototxt(text)
    assert str(err.value) == message
