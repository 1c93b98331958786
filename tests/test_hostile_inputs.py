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
from gui_helpers import plate_file, settings  # noqa: F401  (fixtures of the GUI probe)
from conftest import plate_like
from viewer.net.weights import init_weights, load_net
from viewer import cli
from viewer.caffe import model_io
# Imported here, not first inside a probe: tracemalloc makes importing colorcet take seconds.
from viewer.maps import render  # noqa: F401
from viewer.maps import export
from viewer.errors import ViewerError

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
    from viewer.maps.featuremap import DenseClassifier

    if engine not in available_engines():
        pytest.skip(f"{engine} is not installed")
    text = HEAD + 'layer { name: "r" type: "ReLU" bottom: "data" top: "data" }\n' + CONV
    param, _ = model_io.parse_prototxt(text)
    net = init_weights(param, seed=3)
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
    """Refused when the net is read, for every engine: real Caffe would abort the process on
    these (a Softmax on axis 7 is a CHECK failure, SIGABRT)."""
    from viewer.engines import available_engines

    proto = tmp_path / "net.prototxt"
    proto.write_text(HEAD + CONV + layers)
    _, weights = net_files(tmp_path, HEAD + CONV, stem="weights")
    for engine in [e for e in ("numpy", "blas", "caffe") if e in available_engines()]:
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
    model = model_io.to_netparameter(load_net(good, weights))
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
    model = model_io.to_netparameter(load_net(proto, weights))
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
    original = load_net(proto, weights)
    weights.write_bytes(reshaped(proto, weights, "ip", (1, 1, 37, 2304), legacy=True,
                                 also_shape=(9, 9)))
    net = load_net(proto, weights)
    assert net.weights["ip"][0].shape == (37, 2304)
    assert np.array_equal(net.weights["ip"][0], original.weights["ip"][0])
    weights.write_bytes(reshaped(proto, weights, "ip", (1, 37, 2304, 1), legacy=True))
    with pytest.raises(model_io.ModelError, match=r"shape mismatch.*legacy \(1, 37, 2304, 1\)"):
        load_net(proto, weights)


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


def test_a_fifo_as_the_mean_or_the_labels_is_refused_without_blocking(tmp_path, plate_png,
                                                                     capsys):
    proto, weights = net_files(tmp_path, HEAD + CONV)
    mean, names = tmp_path / "mean.npy", tmp_path / "labels.txt"
    os.mkfifo(mean)
    os.mkfifo(names)
    probe(capsys, *map_args(tmp_path, plate_png, proto, weights, "--mean", mean),
          inputs=(plate_png, proto, weights), absent=(tmp_path / "out",),
          says=(f"--mean {mean} cannot be read (it is a FIFO",))
    probe(capsys, *map_args(tmp_path, plate_png, proto, weights, "--labels", names),
          inputs=(plate_png, proto, weights), absent=(tmp_path / "out",),
          says=(f"--labels {names} cannot be read (it is a FIFO",))


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


# ---- LMDBs: items 1, 2, 6, 9, 14 and their internal errors -------------------------------------

def lmdb_of(path: Path, records: list[tuple[bytes, bytes]]) -> Path:
    """An LMDB holding exactly these (key, value) pairs, written as any tool could."""
    import lmdb

    env = lmdb.open(str(path), map_size=64 << 20)
    with env.begin(write=True) as txn:
        for key, value in records:
            txn.put(key, value)
    env.close()
    return path


def datum(image: np.ndarray, label: int = 1, **fields) -> bytes:
    from viewer.caffe.lmdb_io import make_datum

    d = make_datum(image, label)
    for name, value in fields.items():
        setattr(d, name, value)
    return d.SerializeToString()


@pytest.fixture
def small_lmdb(tmp_path) -> Path:
    return lmdb_of(tmp_path / "test_lmdb", [(f"{k:08d}".encode(), datum(
        np.full((28, 28), 9 * k, np.uint8), k)) for k in range(6)])


@pytest.mark.parametrize("out", ["data.mdb", "lock.mdb", "sheet.png"])
def test_show_never_writes_into_the_lmdb_it_reads(small_lmdb, capsys, out):
    probe(capsys, "dataset", "show", small_lmdb, "--out", small_lmdb / out,
          inputs=(small_lmdb,), says=(f"refusing to write {small_lmdb / out} inside the input "
                                      f"folder {small_lmdb}",))
    assert sorted(p.name for p in small_lmdb.iterdir()) == ["data.mdb", "lock.mdb"]


def test_force_replaces_only_an_lmdb_dataset_make_wrote(tmp_path, small_lmdb, capsys):
    users = tmp_path / "train_lmdb"
    users.mkdir()
    (users / "thesis.tex").write_text("four years of work")
    probe(capsys, "dataset", "make", "--out", tmp_path, "--count", "20", "--force",
          inputs=(users, small_lmdb), says=(f"refusing to replace {users}: it holds files an "
                                            "LMDB does not (thesis.tex)",))
    (users / "thesis.tex").unlink()
    lmdb_of(users, [(b"00000000", datum(np.zeros((28, 28), np.uint8)))])
    probe(capsys, "dataset", "make", "--out", tmp_path, "--count", "20", "--force",
          inputs=(users, small_lmdb), says=(f"refusing to replace {users}: no dataset.json "
                                            "beside it",))


def test_a_truncated_data_file_is_named_not_a_sigbus(tmp_path):
    """LMDB maps data.mdb: a page past the end of a truncated file kills the reader with
    SIGBUS, so this runs in a child."""
    path = lmdb_of(tmp_path / "train_lmdb", [(f"{k:08d}".encode(), datum(
        np.full((28, 28), k % 256, np.uint8), k)) for k in range(800)])
    data = path / "data.mdb"
    os.truncate(data, data.stat().st_size // 2)
    before = fingerprint(path)
    result = run_child("dataset", "show", path, "--out", tmp_path / "sheet.png")
    check_contract(result.returncode, result.stderr, 2, (f"{data} is truncated",))
    assert fingerprint(path) == before and not (tmp_path / "sheet.png").exists()


def test_damaged_lmdb_pages_are_named(tmp_path, capsys):
    path = lmdb_of(tmp_path / "train_lmdb", [(f"{k:08d}".encode(), datum(
        np.full((28, 28), k % 256, np.uint8), k)) for k in range(800)])
    pages = bytearray((path / "data.mdb").read_bytes())
    for page in range(2, len(pages) // 4096):      # every page's header, after the two metas
        pages[page * 4096 + 10:page * 4096 + 12] = b"\xff\xff"
    (path / "data.mdb").write_bytes(pages)
    probe(capsys, "dataset", "show", path, "--out", tmp_path / "sheet.png", inputs=(path,),
          absent=(tmp_path / "sheet.png",), says=(f"{path} is damaged (",))


def png_header(width: int, height: int) -> bytes:
    from bad_inputs import png_declaring

    return png_declaring(width, height)


@pytest.mark.parametrize("records, says", [
    ([(b"00000000", datum(np.zeros((1, 1), np.uint8), data=png_header(20000, 20000),
                          encoded=True))], "declares an image of more than the 25 megapixels"),
    ([(b"00000000", datum(np.zeros((1, 30000), np.uint8))),
      (b"00000001", datum(np.zeros((30000, 1), np.uint8)))],
     "records up to 30000x30000 pixels make a contact sheet"),
], ids=["encoded-20000x20000", "30000x1-and-1x30000"])
def test_records_too_large_to_decode_or_draw_are_refused_first(tmp_path, capsys, records, says):
    path = lmdb_of(tmp_path / "big_lmdb", records)
    probe(capsys, "dataset", "show", path, "--out", tmp_path / "sheet.png", inputs=(path,),
          absent=(tmp_path / "sheet.png",), says=(says,))


def test_keys_with_control_characters_are_printed_escaped(tmp_path, capsys):
    """ESC, BEL and newline in a key would drive the terminal; they are shown as escapes and
    still round-trip through `--key`-style lookups."""
    from viewer.caffe.lmdb_io import open_lmdb

    key = b"\x1b[2J\x07evil\nkey\xff"
    path = lmdb_of(tmp_path / "keys_lmdb", [(key, datum(np.zeros((4, 4), np.uint8), 3))])
    assert cli.main(["dataset", "show", str(path), "--out", str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out
    assert "\\x1b[2J\\x07evil\\x0akey\\xff  label  3" in out
    assert not any(c in out for c in "\x1b\x07\xff")
    with open_lmdb(path) as db:
        assert db.get(db.keys()[0]).label == 3


@pytest.mark.parametrize("args, says", [
    (("--key", "é"), "no record with key 'é'"),
    (("--key", "\x1b]0;title\x07"), "no record with key '\\x1b]0;title\\x07'"),
], ids=["non-ascii-key", "escape-sequence-key"])
def test_any_key_text_is_looked_up_and_named(small_lmdb, tmp_path, capsys, args, says):
    probe(capsys, "dataset", "show", small_lmdb, *args, "--out", tmp_path / "s.png",
          inputs=(small_lmdb,), absent=(tmp_path / "s.png",), says=(says,))


def test_a_two_channel_datum_is_shown(tmp_path, capsys):
    path = lmdb_of(tmp_path / "two_lmdb", [(b"00000000", datum(np.zeros((2, 5, 6), np.uint8)))])
    assert cli.main(["dataset", "show", str(path), "--out", str(tmp_path / "s.png")]) == 0
    assert "00000000  label  1   B  2x5x6" in capsys.readouterr().out
    assert (tmp_path / "s.png").is_file()


def test_a_negative_seed_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["dataset", "make", "--out", str(tmp_path / "d"), "--seed", "-1"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        "argument --seed: a seed is 0 or more, got -1")
    assert not (tmp_path / "d").exists()


# ---- item 3: files that belong together are written together, or not at all ----------------------

def surgered_then_retrained(tmp_path: Path) -> tuple[Path, Path, Path, list[Path], dict]:
    """`surgery --out` run once, then the classifier's weights changed: the next surgery
    writes new files over the ones listed (with their fingerprint)."""
    proto, weights = net_files(tmp_path, IP_NET)
    out = tmp_path / "out"
    assert cli.main(["surgery", "--prototxt", str(proto), "--weights", str(weights),
                     "--out", str(out)]) == 0
    written = sorted(out.iterdir())
    earlier = fingerprint(*written)
    weights.write_bytes(model_io.caffemodel_bytes(init_weights(
        model_io.parse_prototxt(IP_NET)[0], seed=5)))
    return proto, weights, out, written, earlier


def test_a_full_disk_during_surgery_leaves_the_earlier_pair(tmp_path, capsys, monkeypatch):
    from viewer.files import safe_write

    proto, weights, out, pair, earlier = surgered_then_retrained(tmp_path)
    fsync = os.fsync

    def disk_full(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".part") and \
                ".caffemodel." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(28, "No space left on device")
        return fsync(fd)

    monkeypatch.setattr(safe_write.os, "fsync", disk_full)
    probe(capsys, "surgery", "--prototxt", proto, "--weights", weights, "--out", out,
          inputs=(proto, weights), says=("no space left on device",
                                         "none of net_fullconv.prototxt, net_fullconv.caffemodel, "
                                         "net_fullconv.preprocess.json was written"))
    assert sorted(out.iterdir()) == pair and fingerprint(*pair) == earlier


def test_a_sidecar_that_cannot_be_written_leaves_the_earlier_net_too(tmp_path, capsys,
                                                                     monkeypatch):
    """The sidecar belongs to the pair: a new net beside the earlier sidecar would be fed with
    the earlier mean and channel order."""
    from viewer.files import safe_write

    proto, weights, out, trio, earlier = surgered_then_retrained(tmp_path)
    replace = os.replace

    def failing(src, dst):
        if str(dst).endswith(".preprocess.json"):
            raise OSError(5, "Input/output error")
        return replace(src, dst)

    monkeypatch.setattr(safe_write.os, "replace", failing)
    probe(capsys, "surgery", "--prototxt", proto, "--weights", weights, "--out", out,
          "--mean", "3", inputs=(proto, weights),
          says=("input/output error", "none of net_fullconv.prototxt, net_fullconv.caffemodel, "
                                      "net_fullconv.preprocess.json was written"))
    assert sorted(out.iterdir()) == trio and fingerprint(*trio) == earlier


def test_a_pair_whose_second_rename_fails_puts_the_first_back(tmp_path, monkeypatch):
    from viewer.files import safe_write

    proto, weights = write_net_pair(tmp_path, TINY_NET, "pair")
    before = fingerprint(proto, weights)
    replace = os.replace

    def failing(src, dst):
        if str(dst).endswith(".caffemodel"):
            raise OSError(5, "Input/output error")
        return replace(src, dst)

    monkeypatch.setattr(safe_write.os, "replace", failing)
    net = init_weights(model_io.parse_prototxt(TINY_NET.replace("Tiny", "New"))[0])
    with pytest.raises(ViewerError, match="input/output error.*none of pair.prototxt"):
        model_io.write_net(net, proto, weights)
    assert fingerprint(proto, weights) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pair.caffemodel", "pair.prototxt"]


# ---- item 8: no display, one line instead of Qt's abort ----------------------------------------

def test_the_viewer_without_a_display_says_so_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM",
                                                            "WAYLAND_DISPLAY")}
    result = run_child("view", env=env)
    check_contract(result.returncode, result.stderr, 2, (
        "no display found (DISPLAY is not set)", "view --screenshot", "`map`, `read`"))


@pytest.mark.parametrize("env, problem", [
    ({}, "DISPLAY is not set"),
    ({"DISPLAY": ":4093"}, "no X server answers at DISPLAY=:4093"),
    ({"DISPLAY": "not a display"}, "no X server answers"),
    ({"DISPLAY": ":4093", "QT_QPA_PLATFORM": "offscreen"}, None),
    ({"QT_QPA_PLATFORM": "wayland"}, None),
])
def test_a_display_is_looked_for_before_qt(env, problem):
    from viewer.gui.display import display_problem

    assert display_problem(env, "darwin") is None      # no X server needed there
    found = display_problem(env, "linux")
    assert (found is None) if problem is None else (problem in found)


# ---- item 13: what the reader ignored is said -------------------------------------------------

def test_an_unknown_prototxt_field_is_refused_as_caffe_refuses_it(tmp_path, plate_png, capsys):
    typo = HEAD + CONV.replace("kernel_size: 5", "kernel_size: 5 weight_filer { type: 'x' }")
    proto, weights = net_files(tmp_path, HEAD + CONV)
    proto.write_text(typo)
    assert cli.main([str(a) for a in map_args(tmp_path, plate_png, proto, weights)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {proto} line 5 (in layer 'conv1'): no field named 'weight_filer' in "
        "ConvolutionParameter (did you mean weight_filler?)"]


# ---- items 10 and 11: the memory estimate covers every layer, and the pictures ---------------------

@pytest.mark.parametrize("layer", [
    'layer { name: "n" type: "LRN" bottom: "conv1" top: "n"\n'
    '        lrn_param { local_size: 40001 norm_region: WITHIN_CHANNEL } }',
    'layer { name: "n" type: "LRN" bottom: "conv1" top: "n"\n'
    '        lrn_param { local_size: 2001 norm_region: WITHIN_CHANNEL } }',
    'layer { name: "n" type: "LRN" bottom: "conv1" top: "n" lrn_param { local_size: 40001 } }',
], ids=["within-40001", "within-2001", "across-40001"])
@pytest.mark.parametrize("engine", ["numpy", "blas", "onnx"])
def test_a_huge_lrn_window_is_quick_and_within_its_estimate(tmp_path, engine, layer):
    """The window sums come from integral images: the cost does not grow with local_size,
    and what the estimate says is what the pass takes."""
    from viewer.net import cost
    from viewer.engines import available_engines
    from viewer.maps.featuremap import DenseClassifier

    if engine not in available_engines():
        pytest.skip(f"{engine} is not installed")
    net = init_weights(model_io.parse_prototxt(HEAD + CONV + layer)[0], seed=1)
    dense = DenseClassifier(net, engine)
    image = plate_like(120, 240, seed=4)
    plan = dense.planner.check_scale(image.shape, 1.0)
    tracemalloc.start()
    try:
        fm = dense.run(image, 1.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.isfinite(fm.scores).all()
    if plan.engine.name != "onnx":           # onnxruntime's own memory is not traced
        assert peak <= plan.engine.peak_bytes((1, 1, 120, 240), dense.wanted_blobs())
    reference = DenseClassifier(net, "numpy").run(image, 1.0)
    assert np.abs(fm.scores - reference.scores).max() < 1e-4 * np.abs(reference.scores).max()


@pytest.mark.parametrize("layers", [
    CONV.replace("kernel_size: 5", "kernel_size: 5 pad: 15000 stride: 15000"),
    CONV + 'layer { name: "p" type: "Pooling" bottom: "conv1" top: "p"\n'
           '        pooling_param { pool: AVE kernel_size: 3 stride: 15000 } }\n',
], ids=["conv-pad-and-stride", "pooling-stride"])
def test_a_pad_or_stride_of_15000_is_counted_before_the_pass(layers, monkeypatch):
    from viewer.net import cost
    from viewer.maps.featuremap import DenseClassifier

    net = init_weights(model_io.parse_prototxt(HEAD + layers)[0], seed=1)
    dense = DenseClassifier(net, "numpy")
    image = plate_like(60, 120, seed=4)
    need = dense.planner.forward_bytes(60, 120)
    assert need > 15000 ** 2 * 4              # the padded copy or pooling canvas is counted
    monkeypatch.setattr(cost, "MEMORY_LIMIT", 64 << 20)
    tracemalloc.start()
    try:
        try:
            dense.run(image, 1.0)
        except model_io.ModelError:
            pass
        except Exception as err:                  # the refusal, or a run on the lean engine
            assert "more than the 0.0625 GB limit" in str(err)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20


def test_the_largest_scale_map_suggests_fits_with_its_pictures(tmp_path, capsys, monkeypatch):
    """The full-size overlay and the conv1 tiles count: at the scale the refusal names, the
    whole `map` (pass, pictures, files) stays within the limit."""
    from viewer.net import cost

    photo = tmp_path / "photo.png"
    Image.fromarray(plate_like(600, 900, seed=5)).save(photo)
    limit = 80 << 20
    monkeypatch.setattr(cost, "MEMORY_LIMIT", limit)
    err = probe(capsys, "map", photo, "--scale", "3", "--engine", "blas", "--out",
                tmp_path / "out", inputs=(photo,), absent=(tmp_path / "out",),
                says=("the largest scale that fits is",))
    largest = err.rsplit("the largest scale that fits is ", 1)[1].strip()
    tracemalloc.start()
    try:
        assert cli.main(["map", str(photo), "--scale", largest, "--engine", "blas",
                         "--out", str(tmp_path / "out")]) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= limit, (largest, peak)


def test_the_viewer_refuses_an_unknown_field_before_any_map(qtbot, tmp_path, plate_file,
                                                            settings):
    from gui_helpers import load_model, open_window

    window = open_window(qtbot, plate_file, settings, scale=1.0)
    kept, maps = window.state.model, []
    window.map_shown.connect(lambda: maps.append(window.state.fm))
    proto, weights = net_files(tmp_path, HEAD + CONV)
    proto.write_text(HEAD + CONV.replace("kernel_size: 5", "kernel_size: 5 weight_filer {}"))
    assert load_model(qtbot, window, proto, weights) == "failed"
    assert window.errors.errors == [f"{proto} line 5 (in layer 'conv1'): no field named "
                                    "'weight_filer' in ConvolutionParameter (did you mean "
                                    "weight_filler?)"]
    assert window.state.model is kept and maps == []
    window.close()
