"""Caffe LMDBs of Datum records: written atomically, read back read-only without a lock file.

The layout is exactly what Caffe's Data layer and `convert_imageset` use: an LMDB environment
folder (data.mdb, lock.mdb) whose keys are zero-padded decimal indices (b"00000006") and whose
values are serialized `caffe.Datum` messages with channels, height, width, raw uint8 `data` in
C x H x W order, and `label`. Encoded records (`encoded=True`, PNG or JPEG bytes in `data`) and
float records (`float_data`) are read too.
"""
from __future__ import annotations

import io
import os
import shutil
import threading
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import lmdb
import numpy as np
from google.protobuf import unknown_fields
from google.protobuf.message import DecodeError

from viewer.errors import DatasetError, shown
from viewer.files import temporaries
from viewer.caffe.proto import caffe_pb2

KEY_DIGITS = 8
_BATCH = 2000  # records per write transaction
# An encoded record may declare at most this many pixels: checked in its header before
# decoding (a 389 KB PNG can declare 20000x20000, 1.2 GB once decoded).
MAX_RECORD_PIXELS = 25_000_000


def key_text(key: bytes) -> str:
    """A record key as text, losslessly (undecodable bytes become surrogates): `key_bytes`
    gives the same bytes back, so a key listed can be looked up again."""
    return key.decode("utf-8", "surrogateescape")


def key_bytes(key: str) -> bytes:
    """The LMDB key of a key text (see `key_text`)."""
    return key.encode("utf-8", "surrogateescape")


def datum_key(index: int) -> bytes:
    """The LMDB key of record `index`: 8 zero-padded decimal digits, as Caffe's tools write."""
    if index < 0:
        raise DatasetError(f"record index {index} is negative")
    return f"{index:0{KEY_DIGITS}d}".encode("ascii")


def make_datum(image: np.ndarray, label: int) -> caffe_pb2.Datum:
    """A raw uint8 Datum from an H x W (one channel) or C x H x W image."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise DatasetError(f"Datum images must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise DatasetError(f"Datum images must be H x W or C x H x W, got shape {arr.shape}")
    c, h, w = arr.shape
    return caffe_pb2.Datum(channels=c, height=h, width=w, data=np.ascontiguousarray(arr).tobytes(),
                           label=int(label))


def check_datum(datum: caffe_pb2.Datum, where: str = "record") -> None:
    """Raise DatasetError unless the Datum's fields describe an image (encoded data is not
    decoded here; `decode_datum` does that)."""
    if datum.encoded:
        if not datum.data:
            raise DatasetError(f"{where}: encoded Datum holds no image bytes")
        return
    c, h, w = datum.channels, datum.height, datum.width
    if c <= 0 or h <= 0 or w <= 0:
        raise DatasetError(f"{where} is not a Caffe Datum: channels/height/width are "
                           f"{c}/{h}/{w}, expected positive sizes")
    if datum.data and len(datum.data) != c * h * w:
        raise DatasetError(f"{where}: Datum data has {len(datum.data)} bytes, expected "
                           f"{c}*{h}*{w} = {c * h * w}")
    if not datum.data and len(datum.float_data) != c * h * w:
        raise DatasetError(f"{where}: Datum has neither {c * h * w} data bytes nor as many "
                           f"float_data values")


def decode_datum(datum: caffe_pb2.Datum, where: str = "record") -> np.ndarray:
    """The image of a Datum as C x H x W: uint8 for raw or encoded data, float32 for float_data.

    Encoded data (PNG/JPEG) is decoded with cv2.imdecode, colour as BGR planes like Caffe.
    Raises DatasetError when the fields do not describe an image.
    """
    check_datum(datum, where)
    if datum.encoded:
        _check_declared_size(datum.data, where)
        buf = np.frombuffer(datum.data, np.uint8)
        flag = cv2.IMREAD_GRAYSCALE if datum.channels == 1 else cv2.IMREAD_UNCHANGED
        img = cv2.imdecode(buf, flag)
        if img is None:
            raise DatasetError(f"{where}: encoded Datum holds no PNG/JPEG image cv2 can decode")
        return img[None] if img.ndim == 2 else img.transpose(2, 0, 1)
    c, h, w = datum.channels, datum.height, datum.width
    if datum.data:
        return np.frombuffer(datum.data, np.uint8).reshape(c, h, w)
    return np.asarray(datum.float_data, np.float32).reshape(c, h, w)


def _check_declared_size(data: bytes, where: str) -> None:
    """Refuse an encoded image whose header declares more than MAX_RECORD_PIXELS, before
    anything is decoded (Pillow reads only the header here)."""
    from PIL import Image, UnidentifiedImageError

    too_large = (f"{where}: encoded Datum declares an image of more than the "
                 f"{MAX_RECORD_PIXELS // 1_000_000} megapixels a record may have")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
    except Image.DecompressionBombError:
        raise DatasetError(too_large) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise DatasetError(f"{where}: encoded Datum holds no PNG/JPEG image cv2 can "
                           "decode") from None
    if width * height > MAX_RECORD_PIXELS:
        raise DatasetError(f"{too_large} ({width}x{height})")


def parse_datum(raw: bytes, where: str = "record") -> caffe_pb2.Datum:
    """Parse serialized bytes as a Datum, or raise DatasetError saying what they are not."""
    datum = caffe_pb2.Datum()
    try:
        datum.ParseFromString(raw)
    except DecodeError as exc:
        raise DatasetError(f"{where} is not a Caffe Datum ({exc})") from None
    if len(unknown_fields.UnknownFieldSet(datum)):
        raise DatasetError(f"{where} is not a Caffe Datum: it has fields Datum does not define")
    return datum


@dataclass
class Record:
    """One decoded record of an LMDB."""

    key: str
    label: int
    image: np.ndarray  # C x H x W

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.image.shape)  # type: ignore[return-value]


def _check_lmdb_folder(path: Path) -> None:
    if not path.exists():
        raise DatasetError(f"{path} does not exist: expected an LMDB folder with data.mdb")
    if not path.is_dir() or not (path / "data.mdb").is_file():
        raise DatasetError(f"{path} is not an LMDB folder: expected a folder holding data.mdb "
                           f"(as written by `dataset make` or Caffe's convert_imageset)")


# LMDB allows one environment per data file and process: readers of the same one share it.
_SHARED: dict[tuple, list] = {}  # (device, inode) of data.mdb -> [environment, readers]
_SHARED_LOCK = threading.Lock()


def _check_complete(env: lmdb.Environment, data: Path) -> None:
    """Refuse (and close) an environment whose data file ends before its last page: LMDB
    maps the file, and reading a page past its end kills the process with SIGBUS."""
    need = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    size = data.stat().st_size
    if size < need:
        env.close()
        raise DatasetError(f"{data} is truncated ({size} bytes, but its pages need {need}): "
                           "copy the dataset again or rebuild it with `dataset make`")


class LmdbReader:
    """Read-only, lock-free access to a Caffe LMDB: iterate, look up by key, count labels.

    Opening creates no lock file and changes nothing in the folder, so it is safe on a dataset
    that Caffe or another reader has open, in another process or (sharing one environment)
    in this one. Use as a context manager or call `close()`.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        _check_lmdb_folder(self.path)
        data = (self.path / "data.mdb").stat()
        self._key = (data.st_dev, data.st_ino)
        self._closed = False
        with _SHARED_LOCK:
            if self._key not in _SHARED:
                try:
                    env = lmdb.open(str(self.path), readonly=True, lock=False, readahead=False,
                                    subdir=True)
                except lmdb.Error as exc:
                    raise DatasetError(f"{self.path} is not an LMDB folder: {exc}") from None
                _check_complete(env, self.path / "data.mdb")
                _SHARED[self._key] = [env, 0]
            _SHARED[self._key][1] += 1
            self._env = _SHARED[self._key][0]

    def __enter__(self) -> "LmdbReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with _SHARED_LOCK:
            if self._closed:
                return
            self._closed = True
            entry = _SHARED[self._key]   # there while a reader of it is open
            entry[1] -= 1
            if entry[1] == 0:
                del _SHARED[self._key]
                self._env.close()

    def __len__(self) -> int:
        return int(self._env.stat()["entries"])

    def _where(self, key: bytes) -> str:
        return f"record '{shown(key_text(key))}' of {self.path}"

    def _record(self, key: bytes, raw: bytes) -> Record:
        where = self._where(key)
        datum = parse_datum(raw, where)
        return Record(key_text(key), int(datum.label), decode_datum(datum, where))

    @contextmanager
    def _reading(self) -> Iterator[lmdb.Transaction]:
        """A read transaction whose LMDB errors (damaged pages) are DatasetErrors."""
        try:
            with self._env.begin(buffers=False) as txn:
                yield txn
        except lmdb.Error as exc:
            raise DatasetError(f"{self.path} is damaged ({exc}): copy the dataset again or "
                               "rebuild it with `dataset make`") from None

    def keys(self) -> list[str]:
        with self._reading() as txn:
            return [key_text(k) for k in txn.cursor().iternext(values=False)]

    def __iter__(self) -> Iterator[Record]:
        with self._reading() as txn:
            for key, raw in txn.cursor():
                yield self._record(key, raw)

    def key_labels(self) -> Iterator[tuple[str, int]]:
        """(key, label) of every record in key order, each Datum checked but its image not
        decoded: what an index of a large LMDB needs, at a fraction of the cost of iterating."""
        with self._reading() as txn:
            for key, raw in txn.cursor():
                where = self._where(key)
                datum = parse_datum(raw, where)
                check_datum(datum, where)
                yield key_text(key), int(datum.label)

    def get(self, key: str | int) -> Record:
        """The record with `key` ("00000006", or the index 6). Raises KeyError if absent."""
        k = datum_key(key) if isinstance(key, int) else key_bytes(str(key))
        with self._reading() as txn:
            raw = txn.get(k)
        if raw is None:
            raise KeyError(f"no record with key '{shown(key_text(k))}' in {self.path}")
        return self._record(k, raw)

    def label_counts(self) -> dict[int, int]:
        """How many records carry each label, in label order."""
        counts = Counter(label for _, label in self.key_labels())
        return dict(sorted(counts.items()))


def open_lmdb(path: str | os.PathLike) -> LmdbReader:
    """Open a Caffe LMDB for reading (see LmdbReader)."""
    return LmdbReader(path)


def _is_nonempty(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def write_lmdb(path: str | os.PathLike, records: Iterable[tuple[np.ndarray, int]], *,
               overwrite: bool = False, progress=None) -> int:
    """Write (image, label) pairs as Datum records with keys 00000000, 00000001, ...

    The LMDB is built in a temporary folder beside `path` and renamed into place at the end,
    so readers never see half a dataset. An existing non-empty `path` is refused unless
    `overwrite`. `progress(n_written)` is called after each transaction. Returns the count.
    """
    target = Path(path)
    if _is_nonempty(target) and not overwrite:
        raise DatasetError(f"{target} already exists and is not empty: choose another folder "
                           f"or pass overwrite (--force)")
    if target.exists() and not target.is_dir():
        raise DatasetError(f"{target} exists and is not a folder")
    parent = target.parent
    if not parent.is_dir():
        raise DatasetError(f"output folder {parent} does not exist")
    temporaries.remove_stale(parent, target.name, ("",))      # what a killed run left
    tmp = parent / temporaries.temp_name(target.name, "", "tmp-")
    map_size = 64 << 20
    n = 0
    try:
        env = lmdb.open(str(tmp), map_size=map_size, subdir=True, meminit=False)
        try:
            batch: list[tuple[bytes, bytes]] = []

            def flush():
                nonlocal map_size
                while True:
                    try:
                        with env.begin(write=True) as txn:
                            for k, v in batch:
                                txn.put(k, v, overwrite=True)
                        break
                    except lmdb.MapFullError:
                        map_size *= 2
                        env.set_mapsize(map_size)
                batch.clear()
                if progress is not None:
                    progress(n)

            for image, label in records:
                batch.append((datum_key(n), make_datum(image, label).SerializeToString()))
                n += 1
                if len(batch) >= _BATCH:
                    flush()
            flush()
            env.sync(True)
        finally:
            env.close()
        if target.exists():
            old = parent / temporaries.temp_name(target.name, "", "old-")
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, (lmdb.Error, OSError)):     # a full disk: mdb_txn_commit EIO/ENOSPC
            reason = str(err).split(": ", 1)[-1].lower() if isinstance(err, lmdb.Error) else \
                (err.strerror or str(err)).lower()
            raise DatasetError(f"cannot write {target} ({reason}); is the disk full? Nothing "
                               "was written there") from None
        raise
    return n


__all__ = ["KEY_DIGITS", "MAX_RECORD_PIXELS", "key_text", "key_bytes", "shown", "Record", "LmdbReader", "open_lmdb", "write_lmdb", "datum_key",
           "make_datum", "check_datum", "decode_datum", "parse_datum"]
