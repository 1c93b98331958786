"""Caffe LMDB writing and reading: the tutorial's way of reading must see what we wrote."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest

from viewer.errors import DatasetError
from viewer.caffe.lmdb_io import (check_datum, datum_key, decode_datum, make_datum, open_lmdb,
                                    parse_datum, write_lmdb)
from viewer.caffe.proto import caffe_pb2


def _samples(n: int, seed: int = 0) -> list[tuple[np.ndarray, int]]:
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, 256, (28, 28), dtype=np.uint8), int(rng.integers(0, 37)))
            for _ in range(n)]


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


def _raw_lmdb(path: Path, items: dict[bytes, bytes]) -> Path:
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for k, v in items.items():
            txn.put(k, v)
    env.close()
    return path


def test_round_trip_reads_back_with_plain_lmdb_like_the_tutorial(tmp_path):
    samples = _samples(60)
    assert write_lmdb(tmp_path / "db", samples) == 60

    env = lmdb.open(str(tmp_path / "db"), readonly=True, lock=False)
    seen = []
    with env.begin() as txn:
        for key, raw in txn.cursor():
            datum = caffe_pb2.Datum()
            datum.ParseFromString(raw)
            img = np.frombuffer(datum.data, np.uint8).reshape(datum.channels, datum.height,
                                                              datum.width)
            seen.append((key, img, datum.label, datum.encoded))
    env.close()

    assert [k for k, *_ in seen] == [f"{i:08d}".encode() for i in range(60)]
    for (key, img, label, encoded), (want, want_label) in zip(seen, samples):
        assert img.shape == (1, 28, 28)
        np.testing.assert_array_equal(img[0], want)
        assert label == want_label
        assert encoded is False


def test_keys_are_eight_zero_padded_digits():
    assert datum_key(6) == b"00000006"
    assert datum_key(12345678) == b"12345678"
    with pytest.raises(DatasetError):
        datum_key(-1)


def test_reader_iterates_gets_by_key_and_counts_labels(tmp_path):
    samples = _samples(40, seed=1)
    write_lmdb(tmp_path / "db", samples)
    with open_lmdb(tmp_path / "db") as db:
        assert len(db) == 40
        assert db.keys()[:3] == ["00000000", "00000001", "00000002"]
        records = list(db)
        assert [r.label for r in records] == [lab for _, lab in samples]
        rec = db.get("00000006")
        assert rec.key == "00000006" and rec.shape == (1, 28, 28)
        np.testing.assert_array_equal(rec.image[0], samples[6][0])
        np.testing.assert_array_equal(db.get(6).image, rec.image)
        with pytest.raises(KeyError):
            db.get("00000040")
        assert db.label_counts() == dict(sorted(Counter(lab for _, lab in samples).items()))


def test_encoded_and_float_datums_decode(tmp_path):
    rng = np.random.default_rng(2)
    gray = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    smooth = cv2.GaussianBlur(gray, (0, 0), 3)
    colour = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    png = cv2.imencode(".png", gray)[1].tobytes()
    jpg = cv2.imencode(".jpg", smooth, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    png3 = cv2.imencode(".png", colour)[1].tobytes()
    items = {
        b"00000000": caffe_pb2.Datum(channels=1, data=png, label=3, encoded=True),
        b"00000001": caffe_pb2.Datum(channels=1, data=jpg, label=4, encoded=True),
        b"00000002": caffe_pb2.Datum(data=png3, label=5, encoded=True),
        b"00000003": caffe_pb2.Datum(channels=1, height=2, width=3, label=6,
                                     float_data=[0.5, 1, 2, 3, 4, 5]),
    }
    _raw_lmdb(tmp_path / "db", {k: v.SerializeToString() for k, v in items.items()})
    with open_lmdb(tmp_path / "db") as db:
        r_png, r_jpg, r_col, r_float = list(db)
    np.testing.assert_array_equal(r_png.image[0], gray)
    assert r_png.label == 3
    assert r_jpg.shape == (1, 28, 28)
    assert np.abs(r_jpg.image[0].astype(int) - smooth).mean() < 3
    assert r_col.shape == (3, 10, 12)  # BGR planes, as Caffe decodes
    np.testing.assert_array_equal(r_col.image.transpose(1, 2, 0), colour)
    assert r_float.image.dtype == np.float32
    np.testing.assert_array_equal(r_float.image.ravel(), [0.5, 1, 2, 3, 4, 5])


def test_broken_encoded_datum_is_a_dataset_error():
    with pytest.raises(DatasetError, match="encoded"):
        decode_datum(caffe_pb2.Datum(channels=1, data=b"not a png", encoded=True))


def test_a_folder_without_data_mdb_is_not_an_lmdb(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    for bad in (tmp_path / "empty", tmp_path / "file.txt", tmp_path / "missing"):
        with pytest.raises(DatasetError, match="LMDB folder"):
            open_lmdb(bad)
    assert list((tmp_path / "empty").iterdir()) == []


@pytest.mark.parametrize("raw", [
    b"hello world",
    caffe_pb2.NetParameter(name="lenet").SerializeToString(),  # a protobuf, not a Datum
    caffe_pb2.Datum(label=3).SerializeToString(),              # a Datum without an image
    caffe_pb2.Datum(channels=1, height=28, width=28, data=b"\0" * 10).SerializeToString(),
])
def test_records_that_are_not_datums_are_dataset_errors(tmp_path, raw):
    _raw_lmdb(tmp_path / "db", {b"00000000": raw})
    with open_lmdb(tmp_path / "db") as db:
        with pytest.raises(DatasetError, match="00000000"):
            list(db)
        with pytest.raises(DatasetError):
            db.get(0)
        with pytest.raises(DatasetError):
            db.label_counts()


def test_reading_creates_no_lock_file_and_changes_nothing(tmp_path):
    folder = tmp_path / "db"
    write_lmdb(folder, _samples(20))
    (folder / "lock.mdb").unlink()
    before = _snapshot(folder)
    assert set(before) == {"data.mdb"}
    with open_lmdb(folder) as db:
        assert len(list(db)) == 20
        assert sum(db.label_counts().values()) == 20
        db.get(3)
    assert _snapshot(folder) == before


def test_write_refuses_a_non_empty_target_unless_asked(tmp_path):
    target = tmp_path / "db"
    write_lmdb(target, _samples(5, seed=1))
    with pytest.raises(DatasetError, match="already exists"):
        write_lmdb(target, _samples(3))
    with open_lmdb(target) as db:
        assert len(db) == 5
    assert write_lmdb(target, _samples(3, seed=2), overwrite=True) == 3
    with open_lmdb(target) as db:
        assert len(db) == 3
        np.testing.assert_array_equal(db.get(0).image[0], _samples(3, seed=2)[0][0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db"]  # no temporary left


def test_an_interrupted_write_leaves_nothing_behind(tmp_path):
    def records():
        yield from _samples(3)
        raise RuntimeError("generator failed")

    with pytest.raises(RuntimeError):
        write_lmdb(tmp_path / "db", records())
    assert list(tmp_path.iterdir()) == []


def test_write_grows_the_map_for_large_records(tmp_path):
    big = [(np.full((3, 512, 512), i, np.uint8), i) for i in range(100)]  # 75 MiB > 64 MiB
    assert write_lmdb(tmp_path / "db", big) == 100
    with open_lmdb(tmp_path / "db") as db:
        assert db.get(99).image[2, 5, 5] == 99
    assert os.path.getsize(tmp_path / "db" / "data.mdb") > 75 * 2**20


def test_make_datum_checks_its_image():
    d = make_datum(np.zeros((2, 4, 5), np.uint8), 7)
    assert (d.channels, d.height, d.width, d.label, len(d.data)) == (2, 4, 5, 7, 40)
    with pytest.raises(DatasetError, match="uint8"):
        make_datum(np.zeros((4, 4), np.float32), 0)
    with pytest.raises(DatasetError, match="shape"):
        make_datum(np.zeros((1, 2, 3, 4), np.uint8), 0)


def test_non_square_raw_and_float_records_read_back_as_channels_rows_columns(tmp_path):
    """Height != width != channels, so a (c, w, h) reshape cannot pass for (c, h, w)."""
    image = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    floats = np.arange(3 * 4, dtype=np.float32).reshape(1, 3, 4) / 2
    items = {datum_key(0): make_datum(image, 1).SerializeToString(),
             datum_key(1): caffe_pb2.Datum(channels=1, height=3, width=4, label=2,
                                           float_data=floats.ravel()).SerializeToString()}
    _raw_lmdb(tmp_path / "db", items)
    with open_lmdb(tmp_path / "db") as db:
        raw, flt = list(db)
    assert raw.shape == (2, 3, 5) and raw.image.shape == (2, 3, 5)
    np.testing.assert_array_equal(raw.image, image)
    np.testing.assert_array_equal(flt.image, floats)


def test_progress_follows_each_transaction_and_bad_targets_are_named(tmp_path, monkeypatch):
    from viewer.caffe import lmdb_io

    monkeypatch.setattr(lmdb_io, "_BATCH", 3)
    seen = []
    assert write_lmdb(tmp_path / "db", _samples(7), progress=seen.append) == 7
    assert seen == [3, 6, 7]
    with open_lmdb(tmp_path / "db") as db:
        assert [r.label for r in db] == [label for _, label in _samples(7)]
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError) as err:
        write_lmdb(tmp_path / "file", _samples(1), overwrite=True)
    assert str(err.value) == f"{tmp_path / 'file'} exists and is not a folder"
    with pytest.raises(DatasetError) as err:
        write_lmdb(tmp_path / "missing" / "db", _samples(1))
    assert str(err.value) == f"output folder {tmp_path / 'missing'} does not exist"


def test_keys_round_trip_as_text_and_print_as_escapes():
    from viewer.caffe.lmdb_io import key_bytes, key_text, shown

    raw = b"k\x1b[2J\xff\x80\n\xc3\xa9"                  # ESC, undecodable bytes, newline, é
    assert key_bytes(key_text(raw)) == raw
    assert shown(key_text(raw)) == "k\\x1b[2J\\xff\\x80\\x0aé"
    assert shown("bell\x07 del\x7f line\u2028") == "bell\\x07 del\\x7f line\\u2028"
    assert shown("\x9b\xa0 ok") == "\\x9b\\xa0 ok"          # C1 control, no-break space
    with pytest.raises(DatasetError, match="record index -1 is negative"):
        datum_key(-1)


def test_key_labels_list_every_record_and_name_a_broken_one(tmp_path):
    samples = _samples(5, seed=3)
    write_lmdb(tmp_path / "db", samples)
    with open_lmdb(tmp_path / "db") as db:
        assert list(db.key_labels()) == [(f"{k:08d}", label) for k, (_, label) in
                                         enumerate(samples)]
    bad = caffe_pb2.Datum(channels=1, height=2, width=3, data=b"\0" * 5).SerializeToString()
    _raw_lmdb(tmp_path / "bad", {b"00000000": make_datum(samples[0][0], 1).SerializeToString(),
                                 b"0000000\xff": bad})
    with open_lmdb(tmp_path / "bad") as db:
        with pytest.raises(DatasetError) as err:
            list(db.key_labels())
    assert str(err.value) == (f"record '0000000\\xff' of {tmp_path / 'bad'}: Datum data has 5 "
                              "bytes, expected 1*2*3 = 6")


def test_key_labels_give_keys_that_get_finds_again(tmp_path):
    """convert_imageset keys hold file names, which need not be ASCII: the browser pages
    through the keys key_labels lists with get()."""
    keys = [b"00000000_caf\xc3\xa9.png", b"00000001_\xff.png"]
    _raw_lmdb(tmp_path / "db", {k: make_datum(np.full((2, 3), i, np.uint8), i + 4)
                                .SerializeToString() for i, k in enumerate(keys)})
    with open_lmdb(tmp_path / "db") as db:
        listed = list(db.key_labels())
        assert listed == [("00000000_café.png", 4), ("00000001_\udcff.png", 5)]
        assert [db.get(key).image[0, 0, 0] for key, _ in listed] == [0, 1]


def test_records_are_named_in_every_error(tmp_path):
    _raw_lmdb(tmp_path / "db", {b"00000000": b"hello world"})
    with open_lmdb(tmp_path / "db") as db:
        for read in (db.key_labels, db.label_counts):
            with pytest.raises(DatasetError) as err:
                list(read())
            assert str(err.value).startswith(f"record '00000000' of {tmp_path / 'db'} is not a "
                                             "Caffe Datum (")
        with pytest.raises(KeyError) as missing:
            db.get("0000\x1b9")
        assert missing.value.args == (f"no record with key '0000\\x1b9' in {tmp_path / 'db'}",)
    _raw_lmdb(tmp_path / "empty", {b"00000000": caffe_pb2.Datum(channels=2, height=3, width=4)
                                   .SerializeToString()})
    with open_lmdb(tmp_path / "empty") as db:
        with pytest.raises(DatasetError) as err:
            db.label_counts()
    assert str(err.value) == (f"record '00000000' of {tmp_path / 'empty'}: Datum has neither 24 "
                              "data bytes nor as many float_data values")


@pytest.mark.parametrize("sizes", [(0, 2, 3), (1, 0, 3), (1, 2, 0), (-1, 2, 3)])
def test_a_datum_with_a_size_not_positive_is_no_image(sizes):
    c, h, w = sizes
    datum = caffe_pb2.Datum(channels=c, height=h, width=w)
    with pytest.raises(DatasetError) as err:
        decode_datum(datum)
    assert str(err.value) == (f"record is not a Caffe Datum: channels/height/width are {c}/{h}/"
                              f"{w}, expected positive sizes")


def test_the_default_name_of_a_record_in_messages():
    with pytest.raises(DatasetError, match=r"^record is not a Caffe Datum \("):
        parse_datum(b"hello world")
    with pytest.raises(DatasetError, match=r"^record: encoded Datum holds no image bytes$"):
        decode_datum(caffe_pb2.Datum(encoded=True))
    with pytest.raises(DatasetError, match=r"^record is not a Caffe Datum: channels/"):
        check_datum(caffe_pb2.Datum())


@pytest.mark.parametrize("data", [
    b"not a png",
    cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1].tobytes()[:-20],   # cut in its pixels
])
def test_encoded_bytes_that_do_not_decode_are_named(data):
    """Bytes that are no image at all, and a PNG cut short (Pillow reads its header, cv2
    cannot decode its pixels)."""
    with pytest.raises(DatasetError) as err:
        decode_datum(caffe_pb2.Datum(channels=1, data=data, encoded=True), "record 7")
    assert str(err.value) == "record 7: encoded Datum holds no PNG/JPEG image cv2 can decode"


def test_a_colour_png_in_a_one_channel_datum_decodes_as_gray():
    colour = np.zeros((2, 3, 3), np.uint8)
    colour[..., 2] = 255                                 # red, in cv2's BGR order
    png = cv2.imencode(".png", colour)[1].tobytes()
    image = decode_datum(caffe_pb2.Datum(channels=1, data=png, encoded=True))
    assert image.shape == (1, 2, 3) and image.tolist() == [[[76] * 3] * 2]


def test_encoded_records_declaring_more_than_the_pixel_limit_are_refused(monkeypatch):
    from viewer.caffe import lmdb_io

    monkeypatch.setattr(lmdb_io, "MAX_RECORD_PIXELS", 12)
    encoded = {size: cv2.imencode(".png", np.zeros(size, np.uint8))[1].tobytes()
               for size in [(3, 4), (4, 4)]}
    assert decode_datum(caffe_pb2.Datum(channels=1, data=encoded[3, 4], encoded=True)
                        ).shape == (1, 3, 4)
    with pytest.raises(DatasetError) as err:
        decode_datum(caffe_pb2.Datum(channels=1, data=encoded[4, 4], encoded=True))
    assert str(err.value) == ("record: encoded Datum declares an image of more than the 0 "
                              "megapixels a record may have (4x4)")


def test_a_data_file_one_page_short_is_refused_before_any_read(tmp_path):
    write_lmdb(tmp_path / "db", _samples(5))
    data = tmp_path / "db" / "data.mdb"
    env = lmdb.open(str(tmp_path / "db"), readonly=True, lock=False)
    pages, page = env.info()["last_pgno"] + 1, env.stat()["psize"]
    env.close()
    assert data.stat().st_size == pages * page
    os.truncate(data, (pages - 1) * page)
    with pytest.raises(DatasetError) as err:
        open_lmdb(tmp_path / "db")
    assert str(err.value) == (f"{data} is truncated ({(pages - 1) * page} bytes, but its pages "
                              f"need {pages * page}): copy the dataset again or rebuild it with "
                              "`dataset make`")


def _access_modes(data: Path) -> list[int]:
    """How this process has `data` open: O_RDONLY or O_RDWR, one per descriptor."""
    modes = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(data):
                flags = Path(f"/proc/self/fdinfo/{fd}").read_text().split()[1]
                modes.append(int(flags, 8) & os.O_ACCMODE)
        except OSError:
            continue                 # the descriptor listdir itself used, closed by now
    return modes


def test_readers_open_the_data_file_read_only_and_share_it_until_the_last_closes(tmp_path):
    write_lmdb(tmp_path / "a", _samples(3, seed=1))
    write_lmdb(tmp_path / "b", _samples(4, seed=2))
    data, other_data = tmp_path / "a" / "data.mdb", tmp_path / "b" / "data.mdb"
    first, second, other = open_lmdb(tmp_path / "a"), open_lmdb(tmp_path / "a"), \
        open_lmdb(tmp_path / "b")
    assert _access_modes(data) == [os.O_RDONLY]          # one environment, read-only
    assert (len(first), len(other)) == (3, 4)            # each path its own environment
    first.close()
    first.close()                                        # a second close changes nothing
    assert [r.label for r in second] == [label for _, label in _samples(3, seed=1)]
    second.close()
    assert _access_modes(data) == []                     # the last reader let it go
    assert len(other) == 4
    other.close()
    assert _access_modes(other_data) == []
