"""make_dataset, show_records and the `dataset` subcommand, on small sets."""
from __future__ import annotations

import io
import json
import sys

import cv2
import lmdb
import numpy as np
import pytest

from viewer.cli import main
from viewer.errors import DatasetError
from viewer.caffe.lmdb_io import open_lmdb
from viewer.dataset.make import make_dataset, show_records


def _all_records(path):
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        items = list(txn.cursor())
    env.close()
    return items


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("set") / "data"
    calls = []
    summary = make_dataset(out, 200, seed=11, progress=lambda *a: calls.append(a))
    return out, summary, calls


def test_make_writes_train_and_test_lmdbs(small_set):
    out, summary, calls = small_set
    assert (summary.train_count, summary.test_count) == (180, 20)
    with open_lmdb(out / "train_lmdb") as train, open_lmdb(out / "test_lmdb") as test:
        assert len(train) == 180 and len(test) == 20
        counts = train.label_counts()
        assert sum(counts.values()) == 180
        assert set(counts) <= set(range(37)) and 36 in counts
        assert 0.3 < counts[36] / 180 < 0.56
        assert {r.shape for r in test} == {(1, 28, 28)}
    info = json.loads((out / "dataset.json").read_text())
    assert (info["train_count"], info["test_count"], info["seed"]) == (180, 20, 11)
    assert info["background_label"] == 36 and len(info["characters"]) == 36
    assert ("train", 0, 180) in calls and ("train", 180, 180) in calls
    assert ("test", 20, 20) in calls
    assert summary.windows_per_second > 0


def test_make_is_deterministic_and_the_splits_differ(small_set, tmp_path):
    out, _, _ = small_set
    again = make_dataset(tmp_path / "again", 200, seed=11)
    assert _all_records(again.train_path) == _all_records(out / "train_lmdb")
    assert _all_records(again.test_path) == _all_records(out / "test_lmdb")
    other = make_dataset(tmp_path / "other", 200, seed=12)
    assert _all_records(other.test_path) != _all_records(out / "test_lmdb")
    train_images = {v for _, v in _all_records(out / "train_lmdb")}
    assert not train_images & {v for _, v in _all_records(out / "test_lmdb")}


def test_make_refuses_existing_output_and_bad_counts(small_set, tmp_path):
    out, _, _ = small_set
    with pytest.raises(DatasetError, match="already exists"):
        make_dataset(out, 200, seed=1)
    with pytest.raises(DatasetError, match="test count"):
        make_dataset(tmp_path / "x", 10, test_count=10)
    with pytest.raises(DatasetError, match="at least 2"):
        make_dataset(tmp_path / "y", 1)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    redo = make_dataset(tmp_path / "z", 40, seed=2, test_count=5)
    again = make_dataset(tmp_path / "z", 30, seed=2, test_count=5, overwrite=True)
    assert (redo.train_count, again.train_count) == (35, 25)
    with open_lmdb(again.train_path) as db:
        assert len(db) == 25


def test_show_prints_records_and_saves_a_contact_sheet(small_set, tmp_path, capsys):
    out, _, _ = small_set
    png = show_records(out / "test_lmdb", out_png=tmp_path / "sheet.png", limit=20)
    text = capsys.readouterr().out
    lines = [ln for ln in text.splitlines() if ln.startswith("000000")]
    assert len(lines) == 20 and lines[6].split()[0] == "00000006"
    assert "20 records" in text and "1x28x28" in lines[0]
    sheet = cv2.imread(str(png))
    assert sheet.shape == (2 * (84 + 16 + 4), 16 * (84 + 4), 3)
    assert sheet.std() > 10  # pictures, not a blank page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sheet.png"]

    with open_lmdb(out / "test_lmdb") as db:
        rec = db.get(6)
    show_records(out / "test_lmdb", key="00000006", out_png=tmp_path / "one.png")
    line = capsys.readouterr().out.splitlines()[0]
    assert line.split()[:3] == ["00000006", "label", str(rec.label)]
    one = cv2.imread(str(tmp_path / "one.png"), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(one[:224:8, :224:8], rec.image[0])
    with pytest.raises(DatasetError, match="no record"):
        show_records(out / "test_lmdb", key="99999999", out_png=tmp_path / "none.png")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_dataset_make_and_show(tmp_path, capsys, monkeypatch):
    out = tmp_path / "cli"
    terminal = Terminal()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stderr", terminal)      # a bar on a terminal only
        assert main(["dataset", "make", "--out", str(out), "--count", "60", "--seed", "5"]) == 0
    drawn = terminal.getvalue()
    assert "train:" in drawn and "/54 " in drawn and "test:" in drawn and "/6 " in drawn
    captured = capsys.readouterr()
    assert captured.err == "" and "wrote" in captured.out
    assert main(["dataset", "show", str(out / "test_lmdb"), "--key", "3"]) == 0
    assert capsys.readouterr().out.startswith("00000003")
    assert (out / "test_lmdb_sheet.png").is_file()

    assert main(["dataset", "make", "--out", str(out), "--count", "60"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "--force" in err[0]
    assert main(["dataset", "show", str(tmp_path)]) == 2
    assert "not an LMDB folder" in capsys.readouterr().err


def test_ctrl_c_in_the_test_split_leaves_no_dataset(tmp_path, monkeypatch, capsys):
    from viewer.cli import main
    from viewer.dataset import make

    real_write = make.write_lmdb

    def interrupted(path, records, **kwargs):
        if path.name == "test_lmdb":
            raise KeyboardInterrupt
        return real_write(path, records, **kwargs)

    monkeypatch.setattr(make, "write_lmdb", interrupted)
    out = tmp_path / "plates"
    assert main(["dataset", "make", "--out", str(out), "--count", "40"]) == 130
    assert capsys.readouterr() == ("", "error: interrupted\n")
    assert not out.exists()           # the run made the folder, so it takes it away
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["dataset", "make", "--out", str(out), "--count", "40"]) == 130
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]   # a user's folder stays


def test_the_dinish_faces_are_drawn_only_when_asked(small_set, tmp_path, capsys):
    """The default data's record names no face set (it is what `make model` made before the
    choice existed); `--faces dinish` names the set, its nine faces and the option."""
    from viewer.dataset.fonts import DINISH_FILES, find_fonts

    out, _, _ = small_set
    default = json.loads((out / "dataset.json").read_text())
    assert "faces" not in default["window"]
    assert default["fonts"] == [f.name for f in find_fonts()]
    assert main(["dataset", "make", "--out", str(tmp_path / "d"), "--count", "40",
                 "--faces", "dinish"]) == 0
    capsys.readouterr()
    info = json.loads((tmp_path / "d" / "dataset.json").read_text())
    assert info["window"]["faces"] == "dinish"
    assert info["fonts"] == [name for _, name in DINISH_FILES]
    assert info["command"].endswith("--seed 0 --faces dinish")
