"""Model files: prototxt and caffemodel round trips, legacy forms, and clear errors."""
from __future__ import annotations

import numpy as np
import pytest

from viewer import model_io, netgraph
from viewer.errors import ModelError
from viewer.proto import caffe_pb2


def test_caffemodel_round_trip_keeps_every_weight(lenet, tmp_path):
    proto, weights = tmp_path / "a.prototxt", tmp_path / "a.caffemodel"
    model_io.write_net(lenet, proto, weights)
    back = model_io.load_net(proto, weights)
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
    net = model_io.load_net(tmp_path / "old.prototxt", tmp_path / "old.caffemodel")
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


def test_unknown_field_is_ignored_with_a_warning_naming_the_layer():
    text = """
    input: "data" input_dim: 1 input_dim: 1 input_dim: 8 input_dim: 8
    layer { name: "c" type: "Convolution" bottom: "data" top: "c"
            shiny_new_option: 3
            convolution_param { num_output: 2 kernel_size: 3 } }
    """
    net, warnings = model_io.parse_prototxt(text, "my.prototxt")
    assert net.layer[0].convolution_param.num_output == 2
    assert len(warnings) == 1
    assert "my.prototxt line 4" in warnings[0]
    assert "'c'" in warnings[0] and "shiny_new_option" in warnings[0]


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
        model_io.load_net(tmp_path / "b.prototxt", tmp_path / "a.caffemodel")
    assert "'ip1'" in str(err.value)
    assert "(400, 800)" in str(err.value) and "(500, 800)" in str(err.value)


def test_truncated_caffemodel_is_a_clear_error(lenet_files, tmp_path):
    proto, weights = lenet_files
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(weights.read_bytes()[:100_000])
    with pytest.raises(ModelError, match="cut.caffemodel"):
        model_io.load_net(proto, cut)


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
