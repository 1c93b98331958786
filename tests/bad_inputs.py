"""Makers of hostile inputs for the reliability tests: every file is generated at test time.

Nothing binary is committed: each function writes a broken, odd or oversized file from a few
lines of code, so a reader can see exactly what the test feeds the viewer.
"""
from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
from hypothesis import strategies as st
from PIL import Image

from viewer.net.weights import init_weights
from viewer.caffe import model_io
from viewer.caffe.proto import caffe_pb2

ROOT = Path(__file__).resolve().parent.parent

# A small classifier (12x12 gray in, 5 classes out) so model tests stay fast.
TINY_NET = """
name: "Tiny"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 1 dim: 12 dim: 12 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1"
        inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "ip1" top: "prob" }
"""


def run_cli(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python main.py ARGS` as a user runs it, with its stdout, stderr and exit code."""
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *map(str, args)],
                          capture_output=True, text=True, encoding="utf-8", cwd=ROOT,
                          timeout=300, env=env)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str,
                          code: int = 2) -> None:
    """The CLI contract for a user error: one `error: ...` line, exit code 2, no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


def write_net_pair(folder: Path, text: str = TINY_NET, stem: str = "tiny",
                   seed: int = 0) -> tuple[Path, Path]:
    """A prototxt and a caffemodel of random weights for `text`."""
    param, _ = model_io.parse_prototxt(text, f"{stem}.prototxt")
    net = init_weights(param, seed)
    proto, weights = folder / f"{stem}.prototxt", folder / f"{stem}.caffemodel"
    model_io.write_net(net, proto, weights)
    return proto, weights


# ---- images -------------------------------------------------------------------------------

def gradient(height: int = 40, width: int = 60) -> np.ndarray:
    """A gray ramp with every value distinct enough to see a wrong conversion."""
    y, x = np.mgrid[:height, :width]
    return ((x * 3 + y * 2) % 256).astype(np.uint8)


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_declaring(width: int, height: int) -> bytes:
    """A valid PNG header declaring a width x height 1-bit image, with almost no pixel data:
    what a decompression bomb looks like to a reader before it decodes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
            png_chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + png_chunk(b"IEND", b""))


# ---- models -------------------------------------------------------------------------------

_V1_NAMES = {"Convolution": "CONVOLUTION", "Pooling": "POOLING", "InnerProduct": "INNER_PRODUCT",
             "ReLU": "RELU", "Softmax": "SOFTMAX", "Power": "POWER", "Dropout": "DROPOUT",
             "Flatten": "FLATTEN"}
_V1_PARAMS = {"Convolution": "convolution_param", "Pooling": "pooling_param",
              "InnerProduct": "inner_product_param", "Power": "power_param",
              "Dropout": "dropout_param"}


def as_v1(net: model_io.CaffeNet) -> caffe_pb2.NetParameter:
    """The net in the pre-2015 format: `input:` dims and `layers { type: CONVOLUTION }`,
    with the weights inside when the net has them (a V1 caffemodel)."""
    old = caffe_pb2.NetParameter(name=net.param.name)
    for layer in net.param.layer:
        if layer.type == "Input":
            old.input.extend(layer.top)
            old.input_dim.extend(layer.input_param.shape[0].dim)
            continue
        v1 = old.layers.add(name=layer.name,
                            type=caffe_pb2.V1LayerParameter.LayerType.Value(_V1_NAMES[layer.type]))
        v1.bottom.extend(layer.bottom)
        v1.top.extend(layer.top)
        if layer.type in _V1_PARAMS:
            getattr(v1, _V1_PARAMS[layer.type]).CopyFrom(getattr(layer, _V1_PARAMS[layer.type]))
        for array in net.weights.get(layer.name, []):
            v1.blobs.append(model_io.array_to_blob(array))
    return old


# ---- fuzzing -------------------------------------------------------------------------------

@st.composite
def mutated_bytes(draw, seeds: list[bytes]) -> bytes:
    """One of `seeds` with one to six byte-level edits: flips, cuts, insertions, repeats."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "repeat"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF, 0x0A, 0x12, 0x08]))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        elif op == "repeat":
            data[at:at] = data[at:at + draw(st.integers(1, 64))]
    return bytes(data)


# ---- read-only folders --------------------------------------------------------------------

def _can_create_in(folder: Path) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def make_read_only(folder: Path) -> Callable[[], None] | None:
    """Make `folder` truly read-only, even for root, and return how to undo it (None if this
    machine offers no way). Tries, in order: permissions (enough for ordinary users), the
    immutable attribute (root on ext4/xfs/btrfs), then a read-only bind mount (root with
    mount rights). Each is verified by a real attempt to create a file."""
    files = [p for p in folder.rglob("*") if p.is_file()]

    def chmod_back() -> None:
        for path in files:
            path.chmod(0o644)
        folder.chmod(0o755)

    for path in files:
        path.chmod(0o444)
    folder.chmod(0o555)
    if not _can_create_in(folder):
        return chmod_back
    chmod_back()

    chattr = shutil.which("chattr")
    if chattr and subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode == 0:
        def unchattr() -> None:
            subprocess.run([chattr, "-i", str(folder)], capture_output=True)
        if not _can_create_in(folder):
            return unchattr
        unchattr()

    mount = shutil.which("mount")
    if mount and subprocess.run([mount, "--bind", "-o", "ro", str(folder), str(folder)],
                                capture_output=True).returncode == 0:
        def unmount() -> None:
            subprocess.run(["umount", str(folder)], capture_output=True)
        if not _can_create_in(folder):
            return unmount
        unmount()
    return None
