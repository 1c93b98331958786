"""A bounded fuzz pass of the model loader: whatever the bytes, only our own clear errors.

Hypothesis feeds `model_io` and `netgraph` random bytes, random text, byte-level mutations
of real caffemodels and prototxts, and structure-aware mutations (a real net with one field
set to an extreme value, or one repeated entry removed). Every outcome must be a loaded net
or a `ViewerError`; any other exception is a crash to fix in the core.

The pass is bounded for CI (`FUZZ_EXAMPLES` examples per property, default 100). For a long
local run: `FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/test_fuzz_model_loader.py`.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import descriptor, text_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bad_inputs import TINY_NET, mutated_bytes
from conftest import OTHER_NET
from viewer.net.weights import init_weights, load_net
from viewer import surgery
from viewer.caffe import model_io
from viewer.files import paths
from viewer.net import geometry, netgraph
from viewer.errors import ViewerError
from viewer.caffe.proto import caffe_pb2

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Small real nets with weights: the seeds of the mutations.
_SEEDS = {"tiny": TINY_NET, "other": OTHER_NET,
          "lenet": paths.CLASSIFIER_PROTOTXT.read_text()}


def _seed_net(name: str) -> model_io.CaffeNet:
    param, _ = model_io.parse_prototxt(_SEEDS[name], f"{name}.prototxt")
    return init_weights(param, seed=0)


SEED_NETS = {name: _seed_net(name) for name in ("tiny", "other")}
SEED_PROTOTXTS = [model_io.prototxt_text(n.param) for n in SEED_NETS.values()] + \
    [paths.CLASSIFIER_PROTOTXT.read_text()]
SEED_CAFFEMODELS = [model_io.caffemodel_bytes(n) for n in SEED_NETS.values()]

# Values that break arithmetic: zero, one, the edges of 32 and 64 bits, absurd sizes.
EXTREME_INTS = [0, 1, 2, 3, 7, 255, 65_536, 1_000_000, 2**31 - 1, 2**31, 2**32 - 1, 2**40,
                2**63 - 1, -1, -2, -(2**31), -(2**63)]
EXTREME_FLOATS = [0.0, -0.0, 1e-45, 1e38, 3.5e38, float("inf"), float("-inf"), float("nan")]


def exercise(prototxt: str | None, caffemodel: bytes | None) -> None:
    """Everything a user's files go through before the first forward pass."""
    with tempfile.TemporaryDirectory() as tmp:
        proto_path = Path(tmp) / "net.prototxt"
        weights_path = Path(tmp) / "net.caffemodel"
        if prototxt is None:
            model_io.parse_caffemodel(caffemodel or b"")
            return
        proto_path.write_text(prototxt, encoding="utf-8", errors="surrogatepass")
        if caffemodel is not None:
            weights_path.write_bytes(caffemodel)
        net = load_net(proto_path, weights_path if caffemodel is not None else None)
    shapes = netgraph.infer_shapes(net.param)
    for layer in netgraph.deploy_layers(net.param):
        if layer.bottom:
            netgraph.param_shapes(layer, shapes[layer.bottom[0]])
    blob = netgraph.score_blob(net.param)
    geometry.geometry_of(net, blob, shapes=shapes)
    if caffemodel is not None and not surgery.is_fully_convolutional(net.param):
        surgery.make_fully_convolutional(net)


def only_viewer_errors(prototxt: str | None, caffemodel: bytes | None) -> None:
    try:
        exercise(prototxt, caffemodel)
    except ViewerError as err:
        message = str(err).strip()
        assert message and "\n" not in message, message   # the CLI prints it as one line


# ---- unstructured input -------------------------------------------------------------------

@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_as_a_caffemodel(data):
    only_viewer_errors(None, data)


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_beside_a_real_prototxt(data):
    only_viewer_errors(SEED_PROTOTXTS[0], data)


@FUZZ
@given(st.text(max_size=2000))
def test_random_text_as_a_prototxt(text):
    only_viewer_errors(text, None)


# ---- byte and token mutations of real files -------------------------------------------------

@FUZZ
@given(mutated_bytes(SEED_CAFFEMODELS), st.integers(0, len(SEED_PROTOTXTS) - 1))
def test_mutated_caffemodels(data, which):
    only_viewer_errors(SEED_PROTOTXTS[which], data)


_KEYWORDS = ["{", "}", ":", '"', "layer", "layers", "name:", "type:", "bottom:", "top:",
             '"Convolution"', '"Pooling"', '"InnerProduct"', '"Flatten"', '"Concat"',
             '"Input"', "kernel_size:", "stride:", "pad:", "group:", "num_output:", "dim:",
             "axis:", "end_axis:", "transpose: true", "global_pooling: true",
             "pool: STOCHASTIC", "dilation:", "input:", "input_dim:", "include { phase: TRAIN }",
             "#", "\\", "\x00", "\u00e9"]


@st.composite
def mutated_prototxt(draw) -> str:
    tokens = draw(st.sampled_from(SEED_PROTOTXTS)).split(" ")
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(tokens) - 1))
        op = draw(st.sampled_from(["number", "keyword", "delete", "duplicate", "swap"]))
        if op == "number":
            tokens[at] = str(draw(st.sampled_from(EXTREME_INTS)))
        elif op == "keyword":
            tokens.insert(at, draw(st.sampled_from(_KEYWORDS)))
        elif op == "delete" and len(tokens) > 1:
            del tokens[at]
        elif op == "duplicate":
            tokens.insert(at, draw(st.sampled_from(tokens)))
        else:
            other = draw(st.integers(0, len(tokens) - 1))
            tokens[at], tokens[other] = tokens[other], tokens[at]
    return " ".join(tokens)


@FUZZ
@given(mutated_prototxt(), st.integers(0, len(SEED_CAFFEMODELS)))
def test_mutated_prototxts(text, which):
    weights = SEED_CAFFEMODELS[which] if which < len(SEED_CAFFEMODELS) else None
    only_viewer_errors(text, weights)


# ---- structure-aware mutations: one field of a real net set to an extreme value -------------

def _scalar_fields(message, path=()) -> list[tuple]:
    """(message, field, index-or-None) for every scalar value set anywhere in `message`."""
    found = []
    for field, value in message.ListFields():
        if field.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
            items = value if field.is_repeated else [value]
            for item in items:
                found.extend(_scalar_fields(item))
        elif field.is_repeated:
            found.extend((message, field, k) for k in range(min(len(value), 4)))
        else:
            found.append((message, field, None))
    return found


def _repeated_fields(message) -> list[tuple]:
    found = []
    for field, value in message.ListFields():
        if field.is_repeated and len(value):
            found.append((message, field))
        if field.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
            items = value if field.is_repeated else [value]
            for item in items:
                found.extend(_repeated_fields(item))
    return found


def _extreme(draw, field) -> object:
    kind = field.cpp_type
    fd = descriptor.FieldDescriptor
    if kind == fd.CPPTYPE_BOOL:
        return draw(st.booleans())
    if kind in (fd.CPPTYPE_FLOAT, fd.CPPTYPE_DOUBLE):
        return draw(st.sampled_from(EXTREME_FLOATS))
    if kind == fd.CPPTYPE_STRING:
        return draw(st.sampled_from(["", "data", "ip1", "x" * 300, "ü", "conv1"]))
    if kind == fd.CPPTYPE_ENUM:
        return draw(st.sampled_from([v.number for v in field.enum_type.values]))
    bits = 32 if kind in (fd.CPPTYPE_INT32, fd.CPPTYPE_UINT32) else 64
    unsigned = kind in (fd.CPPTYPE_UINT32, fd.CPPTYPE_UINT64)
    low, high = (0, 2**bits - 1) if unsigned else (-(2**(bits - 1)), 2**(bits - 1) - 1)
    return draw(st.sampled_from([v for v in EXTREME_INTS if low <= v <= high]))


@st.composite
def mutated_nets(draw) -> tuple[str, caffe_pb2.NetParameter]:
    """(seed name, the seed net with its weights and one to three mutations)."""
    name = draw(st.sampled_from(sorted(SEED_NETS)))
    net = model_io.to_netparameter(SEED_NETS[name])
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            message, field, index = draw(st.sampled_from(_scalar_fields(net)))
            value = _extreme(draw, field)
            if index is None:
                setattr(message, field.name, value)
            else:
                getattr(message, field.name)[index] = value
        else:
            message, field = draw(st.sampled_from(_repeated_fields(net)))
            values = getattr(message, field.name)
            del values[draw(st.integers(0, len(values) - 1))]
    return name, net


@FUZZ
@given(mutated_nets(), st.booleans())
def test_structure_mutations_in_both_files(seed_and_net, with_its_weights):
    name, net = seed_and_net
    weights = net.SerializeToString() if with_its_weights else SEED_CAFFEMODELS[0]
    only_viewer_errors(model_io.prototxt_text(net), weights)


@FUZZ
@given(mutated_nets())
def test_structure_mutations_in_the_caffemodel_only(seed_and_net):
    name, net = seed_and_net
    only_viewer_errors(model_io.prototxt_text(SEED_NETS[name].param), net.SerializeToString())


def test_the_seed_files_load(tmp_path):
    """The mutations start from files that load, so every failure above is the mutation's."""
    for text, data in zip(SEED_PROTOTXTS, SEED_CAFFEMODELS):
        exercise(text, data)


@pytest.mark.parametrize("text", [
    "layer { " * 3000, "layers { " * 3000 + "}" * 3000, "name: " + '"' * 3,
    'layer { name: "a\\', "\ud800", "input_dim: " + "9" * 400,
])
def test_known_nasty_prototxts(text):
    only_viewer_errors(text, None)
