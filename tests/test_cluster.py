"""Batches on Dask (issue 26): a local cluster and a real scheduler with two workers over TCP give
the rows of a sequential run; a worker killed mid-run loses nothing; `--resume` after a killed
run writes each image once; an unreachable scheduler is one line.

One scheduler and its two workers (`dask scheduler`, `dask worker`, real processes on
127.0.0.1) serve every test of this module that needs them.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import plate_like
from viewer.cli import main
from viewer.cli.cluster import ModelBundle, Share

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SAMPLE = ROOT / "resources" / "sample_plate.png"
MODEL = ("lenet_plates_fullconv.prototxt", "lenet_plates_fullconv.caffemodel", "labels.txt")


def rows_of(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def plates(tmp_path_factory) -> Path:
    """Six plate-like images and a damaged one: quick to read at scale 1."""
    folder = tmp_path_factory.mktemp("plates")
    for k in range(6):
        Image.fromarray(plate_like(40, 120, seed=k)).save(folder / f"p{k}.png")
    (folder / "p6.png").write_bytes(b"not a png")
    return folder


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    """Eight copies of the sample plate (about half a second each to read): a batch long
    enough to kill something halfway through."""
    folder = tmp_path_factory.mktemp("samples")
    for k in range(8):
        shutil.copy(SAMPLE, folder / f"s{k:02d}.png")
    return folder


@pytest.fixture(scope="module")
def sample_rows(samples) -> list[dict]:
    """The rows a sequential run gives for the copies of the sample: one read, renamed."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["read", str(SAMPLE), "--json"]) == 0
    row = json.loads(buffer.getvalue())
    assert row["text"] == "RK857AI"
    return [{**row, "image": str(path)} for path in sorted(samples.iterdir())]


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The address of a `dask scheduler` with two `dask worker` processes (one thread each),
    started in another folder with their own temporary folder, and that folder."""
    home = tmp_path_factory.mktemp("cluster")
    (home / "tmp").mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(home / "tmp")}
    file = home / "scheduler.json"
    common = dict(cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                  start_new_session=True)
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file", str(file)],
                              **common)]
    procs.append(subprocess.Popen([str(BIN / "dask"), "worker", "--scheduler-file", str(file),
                                   "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
                                  **common))
    from distributed import Client

    try:
        for _ in range(300):
            if file.exists() and file.stat().st_size:
                break
            time.sleep(0.05)
        with Client(scheduler_file=str(file), timeout="20s") as client:
            client.wait_for_workers(2, timeout=30)
            yield client.scheduler.address, home / "tmp"
    finally:
        for proc in procs:                  # each with the processes it started
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def worker_pids(address: str) -> list[int]:
    from distributed import Client

    with Client(address, timeout="10s") as client:
        client.wait_for_workers(2, timeout=30)
        return sorted(client.run(os.getpid).values())


def test_a_local_cluster_of_two_processes_gives_the_sequential_rows(plates, capsys):
    lenet = ["--model", "lenet"]              # it reads a letter in every one of these
    assert main(["read", str(plates), "--scale", "1", "--json", *lenet]) == 2
    one = capsys.readouterr()
    assert main(["read", str(plates), "--scale", "1", "--json", "--jobs", "2", *lenet]) == 2
    two = capsys.readouterr()
    rows = rows_of(two.out)
    assert two.out == one.out and two.err == one.err
    assert [Path(r["image"]).name for r in rows] == [f"p{k}.png" for k in range(7)]
    assert all(r["scale"] == 1.0 and r["text"] for r in rows[:6])
    assert rows[6]["error"].endswith("p6.png is not an image in a format this viewer reads "
                                     "(PNG, JPEG, TIFF, BMP, GIF, WebP...)")
    assert two.err == f"error: {rows[6]['error']}\n"


def test_a_scheduler_and_two_workers_over_tcp_give_the_same_rows(plates, scheduler, tmp_path,
                                                                 capsys):
    address, worker_tmp = scheduler
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in MODEL:
        shutil.copy(ROOT / "models" / name, elsewhere / name)
    model = ["--prototxt", str(elsewhere / MODEL[0]), "--weights", str(elsewhere / MODEL[1])]
    assert main(["read", str(plates), "--scale", "1", "--json", *model]) == 2
    one = capsys.readouterr()
    assert main(["read", str(plates), "--scale", "1", "--json", *model,
                 "--cluster", address]) == 2
    two = capsys.readouterr()
    assert two.out == one.out and two.err == one.err
    assert len(rows_of(two.out)) == 7
    # The workers wrote the model they were sent under its hash, in their own temporary
    # folder: the same bytes, though they never read the folder it came from.
    import argparse

    digest = ModelBundle.of(argparse.Namespace(prototxt=elsewhere / MODEL[0],
                                               weights=elsewhere / MODEL[1])).digest
    copies = sorted(worker_tmp.glob(f"netsurgery-model-{digest}-*/net/{MODEL[1]}"))
    assert 1 <= len(copies) <= 2
    assert all(c.read_bytes() == (elsewhere / MODEL[1]).read_bytes() for c in copies)
    assert not list(worker_tmp.glob("netsurgery-image-*"))


def test_a_worker_killed_mid_run_loses_nothing(samples, sample_rows, scheduler):
    address, _ = scheduler
    victim = worker_pids(address)[0]
    command = [sys.executable, str(ROOT / "main.py"), "read", str(samples), "--json",
               "--cluster", address]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        first = proc.stdout.readline()
        os.kill(victim, signal.SIGKILL)
        rest, err = proc.stdout.read(), proc.stderr.read()
    rows = rows_of(first + rest)
    assert proc.returncode == 0 and err == ""
    assert rows == sample_rows
    assert victim not in worker_pids(address)          # it was killed, and replaced


def test_resume_after_a_run_killed_halfway_writes_each_image_once(samples, sample_rows, scheduler,
                                                                   tmp_path, capsys):
    address, _ = scheduler
    out = tmp_path / "reads.jsonl"
    # The first run reads here, one image after the other, so that it is surely killed halfway
    # (a cluster's rows can come in a burst); the second goes on on the cluster.
    command = [sys.executable, str(ROOT / "main.py"), "read", str(samples), "--json",
               "--out", str(out), "--resume"]
    with subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE) as proc:
        while not out.exists() or out.read_bytes().count(b"\n") < 3:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.02)
        proc.kill()                                     # as a reboot or a lost client would
    written = out.read_bytes().count(b"\n")
    assert 3 <= written < 8
    with open(out, "ab") as fh:                         # a line the crash cut
        fh.write(b'{"image": "' + str(samples / "s07.png").encode() + b'", "te')
    assert main(["read", str(samples), "--json", "--cluster", address, "--out", str(out),
                 "--resume"]) == 0
    assert capsys.readouterr().out == ""
    assert rows_of(out.read_text()) == sample_rows


def test_an_unreachable_scheduler_is_one_error_line_within_10_s(plates):
    with socket.socket() as sock:                       # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "read", str(plates / "p0.png"),
                           "--cluster", f"127.0.0.1:{port}"], capture_output=True, text=True,
                          cwd=ROOT, timeout=30)
    assert time.perf_counter() - start < 10
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port} "
                           "within 3 s: start it with `dask scheduler`, or check the address "
                           "(tcp://HOST:8786)\n")


def test_each_worker_gets_its_share_of_the_cores_and_of_the_memory_guard():
    share = Share({"10.0.0.5": 2, "10.0.0.6": 8}, {"10.0.0.5": 2, "10.0.0.6": 4})
    assert share.for_worker("10.0.0.5", 2, None) == (1, 2 ** 30)
    assert share.for_worker("10.0.0.6", 32, None) == (4, 2 ** 29)
    assert share.for_worker("10.0.0.6", 32, 3 * 2 ** 30) == (4, 3 * 2 ** 29)
    assert share.for_worker("10.0.0.6", 32, 16 * 2 ** 30) == (4, 2 * 2 ** 30)


def test_resume_counts_whole_rows_only_and_cuts_a_cut_line(tmp_path):
    from viewer.cli.resume import done_images
    from viewer.errors import ViewerError

    rows = tmp_path / "reads.jsonl"
    rows.write_bytes(b'{"image": "a.png", "text": "AB"}\n{"image": "b.png", "error": "x"}\n'
                     b'{"image": "c.png", "te')
    assert done_images(rows) == {"a.png", "b.png"}
    assert rows.read_bytes().count(b"\n") == 2 and rows.read_bytes().endswith(b'"x"}\n')
    assert done_images(tmp_path / "none.jsonl") == set()
    rows.write_bytes(b'{"image": "a.png"}\nnot json\n{"image": "b.png"}\n')
    with pytest.raises(ViewerError, match="has a line that is not a result row of `read`"):
        done_images(rows)
