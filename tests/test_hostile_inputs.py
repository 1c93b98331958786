"""Hostile inputs, round two (issue 19): cycles, FIFOs, weights of the wrong shape, memory past
the guard, LMDBs that fight back. Every input is generated here at test time.

Each probe runs the command line as a user would and holds it to the contract: it ends within
seconds, allocates less than the 2 GB guard, exits with code 1 or 2 and exactly one
`error: ...` line, leaves its inputs byte for byte and writes no partial output. Most run in
this process (`viewer.cli.main`, a few milliseconds each); those that could kill or block the
process (SIGBUS, a FIFO, no display) run as a child with a memory limit.
"""
from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bad_inputs import ROOT, TINY_NET, write_net_pair
from conftest import plate_like
from viewer import cli, model_io
from viewer.proto import caffe_pb2

GUARD = 2 * 1024 ** 3
SECONDS = 20


def fingerprint(*paths: Path) -> list[tuple[bytes, int]]:
    """Content hash and modification time of each file (of each file inside a folder)."""
    files = sorted(f for p in paths for f in ([p] if p.is_file() else p.rglob("*"))
                   if f.is_file())
    return [(hashlib.sha256(f.read_bytes()).digest(), f.stat().st_mtime_ns) for f in files]


def _timeout(signum, frame):
    raise TimeoutError(f"the command ran longer than {SECONDS} s")


def probe(capsys, *args, inputs: tuple[Path, ...] = (), absent: tuple[Path, ...] = (),
          says: tuple[str, ...] = (), code: int = 2) -> str:
    """Run `main.py ARGS` in this process and check the contract; returns the error line."""
    before = fingerprint(*inputs)
    capsys.readouterr()
    old = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(SECONDS)
    tracemalloc.start()
    try:
        status = cli.main([str(a) for a in args])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    err = capsys.readouterr().err
    check_contract(status, err, code, says)
    assert peak < GUARD, peak
    assert fingerprint(*inputs) == before
    for path in absent:
        assert not path.exists(), path
    return err


def check_contract(status: int, err: str, code: int, says: tuple[str, ...]) -> None:
    """Exit code 1 or 2 as expected, one `error:` line and nothing else on stderr."""
    assert status == code, (status, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "internal error" not in err or code == 1, err
    for fragment in says:
        assert fragment in err, (fragment, err)


def run_child(*args, env: dict | None = None, timeout: float = SECONDS
              ) -> subprocess.CompletedProcess:
    """`python main.py ARGS` in a child limited to the 2 GB guard plus the interpreter's own
    address space (numpy, OpenCV and onnxruntime map about 1 GB before doing anything)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (GUARD + 1024 ** 3, GUARD + 1024 ** 3))
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env=env, preexec_fn=limit)


@pytest.fixture
def plate_png(tmp_path) -> Path:
    path = tmp_path / "plate.png"
    Image.fromarray(plate_like(60, 120, seed=1)).save(path)
    return path


def net_files(folder: Path, text: str, stem: str = "net") -> tuple[Path, Path]:
    """A prototxt and a caffemodel of random weights for a net the reader accepts."""
    return write_net_pair(folder, text, stem)


HEAD = """name: "probe"
input: "data"
input_shape { dim: 1 dim: 1 dim: 28 dim: 28 }
"""
CONV = """layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 5 } }
"""


def map_args(folder: Path, image: Path, proto: Path, weights: Path, *extra) -> tuple:
    return ("map", image, "--prototxt", proto, "--weights", weights, "--out", folder / "out",
            "--engine", "numpy", *extra)


# ---- item 4: cycles are refused when the net is read -----------------------------------------

def test_two_layers_writing_each_others_bottoms_are_refused_by_name(tmp_path, plate_png, capsys):
    good, weights = net_files(tmp_path, HEAD + CONV)
    cyclic = tmp_path / "cyclic.prototxt"
    cyclic.write_text(HEAD + """
layer { name: "a" type: "Convolution" bottom: "data" top: "x"
        convolution_param { num_output: 1 kernel_size: 1 } }
layer { name: "b" type: "ReLU" bottom: "x" top: "data" }
""" + CONV)
    for command in (map_args(tmp_path, plate_png, cyclic, weights),
                    ("read", plate_png, "--prototxt", cyclic, "--weights", weights),
                    ("surgery", "--prototxt", cyclic, "--weights", weights,
                     "--out", tmp_path / "out")):
        probe(capsys, *command, inputs=(plate_png, cyclic, weights), absent=(tmp_path / "out",),
              says=("layer 'b' (ReLU) writes blob 'data'", "the net's input already produced",
                    "cycle"))


@pytest.mark.parametrize("engine", ["numpy", "blas", "onnx", "opencv"])
def test_an_in_place_layer_on_the_net_input_runs_as_caffe_runs_it(tmp_path, engine):
    """Caffe allows ReLU in place on a net-level input; following it must not loop."""
    from viewer.engines import available_engines
    from viewer.featuremap import DenseClassifier

    if engine not in available_engines():
        pytest.skip(f"{engine} is not installed")
    text = HEAD + 'layer { name: "r" type: "ReLU" bottom: "data" top: "data" }\n' + CONV
    param, _ = model_io.parse_prototxt(text)
    net = model_io.init_weights(param, seed=3)
    image = plate_like(60, 120, seed=2)
    fm = DenseClassifier(net, engine).run(image, 1.0)
    reference = DenseClassifier(net, "numpy").run(image, 1.0)
    assert fm.probs.shape == (4, 56, 116)
    assert np.abs(fm.scores - reference.scores).max() < 1e-3


# ---- internal errors that are now messages ---------------------------------------------------

@pytest.mark.parametrize("layers, says", [
    ('layer { name: "n" type: "LRN" bottom: "conv1" top: "n" lrn_param { local_size: 0 } }',
     "LRN 'n': local_size 0 must be odd"),
    ('layer { name: "n" type: "LRN" bottom: "conv1" top: "n" lrn_param { local_size: 4 } }',
     "LRN 'n': local_size 4 must be odd"),
    ('layer { name: "s" type: "Softmax" bottom: "conv1" top: "s" softmax_param { axis: 7 } }',
     "layer 's' (Softmax) has axis 7"),
    ('layer { name: "f" type: "Flatten" bottom: "conv1" top: "f" }',
     "scores 'f' are 1x2304, not a map"),
], ids=["lrn-0", "lrn-even", "softmax-axis-7", "flatten-after-last-conv"])
def test_layer_settings_caffe_refuses_are_named(tmp_path, plate_png, capsys, layers, says):
    proto = tmp_path / "net.prototxt"
    proto.write_text(HEAD + CONV + layers)
    _, weights = net_files(tmp_path, HEAD + CONV, stem="weights")
    for engine in ("numpy", "blas"):
        probe(capsys, *map_args(tmp_path, plate_png, proto, weights)[:-1], engine,
              inputs=(plate_png, proto, weights), absent=(tmp_path / "out",), says=(says,))


@pytest.mark.parametrize("head", [
    'input: "data" input_shape { dim: 1 dim: 1 dim: 28 dim: 28 }\n'
    'input: "more" input_shape { dim: 1 dim: 1 dim: 28 dim: 28 }\n',
    'layer { name: "in" type: "Input" top: "data" top: "more"\n'
    '        input_param { shape { dim: 1 dim: 1 dim: 28 dim: 28 } } }\n',
], ids=["two-inputs", "input-layer-with-two-tops"])
def test_a_net_with_two_inputs_is_named(tmp_path, plate_png, capsys, head):
    proto = tmp_path / "net.prototxt"
    proto.write_text('name: "two"\n' + head + CONV)
    _, weights = net_files(tmp_path, HEAD + CONV, stem="weights")
    probe(capsys, *map_args(tmp_path, plate_png, proto, weights),
          inputs=(plate_png, proto, weights), says=("net declares 2 inputs ('data', 'more')",))


def test_twenty_dimensions_of_2_to_the_62_in_a_prototxt_and_a_caffemodel(tmp_path, plate_png,
                                                                        capsys):
    dims = " ".join(["dim: 4611686018427387904"] * 20)
    proto = tmp_path / "net.prototxt"
    proto.write_text(f'name: "big" input: "data" input_shape {{ {dims} }}\n' + CONV)
    good, weights = net_files(tmp_path, HEAD + CONV, stem="weights")
    err = probe(capsys, *map_args(tmp_path, plate_png, proto, weights), inputs=(proto,),
                says=("input 'data' would hold over 10^373 elements", "20-D"))
    assert len(err) < 300
    model = model_io.to_netparameter(model_io.load_net(good, weights))
    model.layer[0].blobs[0].shape.dim[:] = [2 ** 62] * 20
    huge = tmp_path / "huge.caffemodel"
    huge.write_bytes(model.SerializeToString())
    probe(capsys, *map_args(tmp_path, plate_png, good, huge), inputs=(huge,),
          says=("blob 0 declares over 10^373 elements (20-D",))


# ---- item 12: weights of the right count but the wrong shape -----------------------------------

IP_NET = HEAD + CONV + """layer { name: "ip" type: "InnerProduct" bottom: "conv1" top: "ip"
        inner_product_param { num_output: 37 } }
"""


def reshaped(proto: Path, weights: Path, layer: str, shape: tuple[int, ...], *,
             legacy: bool = False, also_shape: tuple[int, ...] | None = None) -> bytes:
    """The caffemodel with one layer's weight blob declared as `shape` (same values), in the
    `shape` field or the legacy num/channels/height/width fields (or both)."""
    model = model_io.to_netparameter(model_io.load_net(proto, weights))
    blob = next(l for l in model.layer if l.name == layer).blobs[0]
    blob.ClearField("shape")
    if legacy:
        blob.num, blob.channels, blob.height, blob.width = shape
    if not legacy or also_shape:
        blob.shape.dim.extend(also_shape or shape)
    return model.SerializeToString()


@pytest.mark.parametrize("layer, shape", [
    ("conv1", (2, 2, 5, 5)), ("conv1", (100, 1, 1, 1)), ("conv1", (1, 4, 1, 5, 5)),
    ("ip", (1, 1, 2304, 37)), ("ip", (1, 1, 37, 2304)),
], ids=["conv-2x2x5x5", "conv-100x1x1x1", "conv-5d", "ip-transposed-4d", "ip-4d-shape-field"])
def test_weights_of_the_right_count_and_the_wrong_shape_are_refused(tmp_path, plate_png, capsys,
                                                                   layer, shape):
    """Real Caffe 1.0 aborts on each with "shape mismatch" (Blob::ShapeEquals): a `shape`
    field must match exactly, whatever the element count."""
    proto, weights = net_files(tmp_path, IP_NET)
    weights.write_bytes(reshaped(proto, weights, layer, shape))
    probe(capsys, "surgery", "--prototxt", proto, "--weights", weights, "--out",
          tmp_path / "out", inputs=(proto, weights), absent=(tmp_path / "out",),
          says=(f"layer '{layer}': shape mismatch", "x".join(map(str, shape)).replace("x", ", ")))


def test_legacy_4d_blobs_are_read_as_caffe_reads_them(tmp_path):
    """The pre-2015 num/channels/height/width fields: an InnerProduct's 37 x 2304 weights as
    1 x 1 x 37 x 2304, its bias as 1 x 1 x 1 x 37; they win over a `shape` field beside them."""
    proto, weights = net_files(tmp_path, IP_NET)
    original = model_io.load_net(proto, weights)
    weights.write_bytes(reshaped(proto, weights, "ip", (1, 1, 37, 2304), legacy=True,
                                 also_shape=(9, 9)))
    net = model_io.load_net(proto, weights)
    assert net.weights["ip"][0].shape == (37, 2304)
    assert np.array_equal(net.weights["ip"][0], original.weights["ip"][0])
    weights.write_bytes(reshaped(proto, weights, "ip", (1, 37, 2304, 1), legacy=True))
    with pytest.raises(model_io.ModelError, match=r"shape mismatch.*legacy \(1, 37, 2304, 1\)"):
        model_io.load_net(proto, weights)


# ---- item 5: FIFOs and devices are refused before a byte is read --------------------------------

@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    return path


def test_a_fifo_as_the_image_or_the_weights_is_refused_without_blocking(tmp_path, plate_png,
                                                                       fifo, capsys):
    proto, weights = net_files(tmp_path, HEAD + CONV)
    probe(capsys, "read", fifo, says=(f"{fifo} cannot be read as an image: it is a FIFO",))
    probe(capsys, *map_args(tmp_path, plate_png, proto, fifo), inputs=(plate_png, proto),
          absent=(tmp_path / "out",), says=(f"cannot read caffemodel {fifo}: it is a FIFO",))
    probe(capsys, *map_args(tmp_path, plate_png, fifo, weights), inputs=(plate_png, weights),
          says=(f"cannot read prototxt {fifo}: it is a FIFO",))


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_an_endless_device_as_a_model_file_or_image_is_refused(tmp_path, plate_png, capsys,
                                                              device):
    proto, weights = net_files(tmp_path, HEAD + CONV)
    linked = tmp_path / "model.caffemodel"
    linked.symlink_to(device)
    probe(capsys, *map_args(tmp_path, plate_png, proto, linked), inputs=(proto,),
          says=(f"cannot read caffemodel {linked}: it is a device, not a regular file",))
    probe(capsys, *map_args(tmp_path, plate_png, device, weights), inputs=(weights,),
          says=(f"cannot read prototxt {device}: it is a device",))
    probe(capsys, "read", device, says=(f"{device} cannot be read as an image: it is a device",))


def test_a_model_file_larger_than_any_real_one_is_refused_unread(tmp_path, plate_png, capsys,
                                                               monkeypatch):
    proto, weights = net_files(tmp_path, HEAD + CONV)
    monkeypatch.setattr(model_io, "MAX_CAFFEMODEL_BYTES", weights.stat().st_size - 1)
    probe(capsys, *map_args(tmp_path, plate_png, proto, weights), inputs=(proto, weights),
          says=(f"cannot read caffemodel {weights}: it is over", "larger than any caffemodel"))
