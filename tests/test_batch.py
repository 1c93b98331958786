"""Batches of images: inputs from folders and globs, rows in order, bad files on their own
line, the same results over several processes, and a closed stdout pipe."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import plate_like
from viewer.cli.batch import expand_inputs
from viewer.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def plates(tmp_path) -> Path:
    """A folder of two plate-like images, a damaged one and a text file."""
    folder = tmp_path / "plates"
    folder.mkdir()
    for k in (1, 2):
        Image.fromarray(plate_like(40, 100, seed=k)).save(folder / f"p{k}.png")
    (folder / "p3.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_inputs_come_from_files_folders_and_globs(plates):
    names = [p.name for p in expand_inputs([plates])]
    assert names == ["p1.png", "p2.png", "p3.png"]
    assert [p.name for p in expand_inputs([str(plates / "p[12].png")])] == ["p1.png", "p2.png"]
    assert expand_inputs([plates / "p2.png", "nothing*.png"]) == [plates / "p2.png",
                                                                   Path("nothing*.png")]


def test_a_batch_reports_a_bad_file_on_its_line_and_goes_on(plates, capsys):
    assert main(["read", str(plates), "--scale", "1", "--format", "jsonl"]) == 2
    out = capsys.readouterr()
    rows = [json.loads(line) for line in out.out.splitlines()]
    assert [Path(r["image"]).name for r in rows] == ["p1.png", "p2.png", "p3.png"]
    assert all("text" in r and r["scale"] == 1.0 for r in rows[:2])
    assert rows[2]["error"].endswith("p3.png is not an image in a format this viewer reads "
                                     "(PNG, JPEG, TIFF, BMP, GIF, WebP...)")
    assert out.err == f"error: {rows[2]['error']}\n"


def test_csv_into_a_file_and_jobs_give_the_same_rows(plates, tmp_path, capsys):
    good = [str(plates / "p1.png"), str(plates / "p2.png")]
    assert main(["read", *good, "--scale", "1", "--json"]) == 0
    one = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    out = tmp_path / "reads.csv"
    assert main(["read", *good, "--scale", "1", "--format", "csv", "--out", str(out),
                 "--jobs", "2"]) == 0
    assert capsys.readouterr().out == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["image"] for r in rows] == good
    assert [r["text"] for r in rows] == [r["text"] for r in one]
    assert [float(r["weakest"]) for r in rows] == [r["weakest"] for r in one]


def test_map_puts_each_image_of_a_batch_in_its_folder(plates, tmp_path, capsys):
    out = tmp_path / "maps"
    assert main(["map", str(plates / "p1.png"), str(plates / "p2.png"), "--out", str(out),
                 "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["files"]["npz"] for r in rows] == [str(out / s / "featuremap.npz")
                                                 for s in ("p1", "p2")]
    assert all(Path(r["files"]["overlay"]).stat().st_size > 0 for r in rows)


def test_a_closed_pipe_ends_quietly(plates):
    command = [sys.executable, str(ROOT / "main.py"), "read", str(plates / "p1.png"),
               str(plates / "p2.png"), "--scale", "1"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as proc:
        proc.stdout.close()                   # as `| head` does when it has its lines
        err = proc.stderr.read().decode()
    assert proc.returncode == 141 and err == ""


def test_ctrl_c_in_a_batch_leaves_no_output_file(plates, tmp_path, monkeypatch, capsys):
    from viewer.cli import read as cli

    real = cli.read_one

    def interrupted(dense, path, **kwargs):
        if path.name == "p2.png":
            raise KeyboardInterrupt
        return real(dense, path, **kwargs)

    monkeypatch.setattr(cli, "read_one", interrupted)
    out = tmp_path / "reads.jsonl"
    assert main(["read", str(plates / "p1.png"), str(plates / "p2.png"), "--scale", "1",
                 "--format", "jsonl", "--out", str(out)]) == 130
    assert capsys.readouterr().err == "error: interrupted\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plates"]
