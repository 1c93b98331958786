"""`train --engine caffe`: the tutorial's way, real Caffe's solver on the LMDBs of `dataset make`.

The generated `lenet_solver.prototxt` and `lenet_train_test.prototxt` are what runs, through
pycaffe (`caffe.get_solver`). The weights come out as Caffe writes them (`net.save`) next to the
deploy prototxt, and the pair is then read back by the viewer's own reader before we report
success. Needs no PyTorch, only `make caffe`.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from viewer import progress
from viewer.caffe.lmdb_io import check_datum, open_lmdb, parse_datum
from viewer.caffe.model_io import CaffeNet
from viewer.errors import DatasetError, TrainingError
from viewer.net import netgraph
from viewer.net.weights import load_net
from viewer.training import nets
from viewer.training.artifacts import (Trained, write_summary,
                                       write_training_files)
from viewer.training.curves import save_curves
from viewer.training.metrics import Evaluation, evaluation

Progress = Callable[[str], None]


@dataclass
class CaffeRun:
    """What a Caffe training run wrote and measured."""

    files: dict[str, Path]
    net: CaffeNet                 # the deploy net with the weights Caffe wrote, read back by us
    losses: list[tuple[int, float, float]] = field(default_factory=list)  # (iter, loss, lr)
    tests: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def final(self) -> dict:
        return self.tests[-1]


def check_records(path: Path, shape: tuple[int, ...], classes: int) -> int:
    """The number of records of an LMDB, after checking every record for what would make
    Caffe's Data layer abort: encoded images (this Caffe is built without OpenCV), a shape
    other than the net's input, a label outside the net's classes."""
    import lmdb

    if not path.is_dir():
        raise TrainingError(f"{path} is missing: make the dataset with "
                            "`python main.py dataset make --out DIR`")
    try:
        env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, subdir=True)
    except lmdb.Error as err:
        raise TrainingError(f"{path} is not an LMDB folder: {err}") from None
    count = 0
    with env, env.begin(buffers=False) as txn:
        for key, raw in txn.cursor():
            where = f"record {key.decode('ascii', 'replace')!r} of {path}"
            try:
                datum = parse_datum(raw, where)
                check_datum(datum, where)
            except DatasetError as err:
                raise TrainingError(str(err)) from None
            if datum.encoded:
                raise TrainingError(f"{where} holds an encoded (PNG/JPEG) image, which Caffe "
                                    "built without OpenCV cannot read; write raw Datums")
            if (datum.channels, datum.height, datum.width) != tuple(shape):
                raise TrainingError(f"{where} is {datum.channels}x{datum.height}x{datum.width},"
                                    f" the net reads {'x'.join(map(str, shape))}")
            if not 0 <= datum.label < classes:
                raise TrainingError(f"{where} has label {datum.label}; the net has {classes} "
                                    "classes")
            count += 1
    if not count:
        raise TrainingError(f"{path} holds no records")
    return count


def evaluate(solver, score_blob: str, count: int, iteration: int) -> Evaluation:
    """Caffe's test net with the current weights, over exactly the `count` test records."""
    net = solver.test_nets[0]
    net.share_with(solver.net)
    scores, labels = [], []
    seen = 0
    while seen < count:
        net.forward()
        take = min(count - seen, net.blobs["label"].data.shape[0])
        scores.append(net.blobs[score_blob].data[:take].reshape(take, -1).copy())
        labels.append(net.blobs["label"].data[:take].astype(np.int64).ravel())
        seen += take
    return evaluation(np.concatenate(scores), np.concatenate(labels), iteration)


def train_with_caffe(data: Path, out: Path, settings: nets.SolverSettings, threads: int = 2,
                     progress: Progress | None = None,
                     tick: Callable[[], None] | None = None,
                     arch: nets.Architecture = nets.ARCHITECTURES["lenet"]) -> CaffeRun:
    """Run the generated solver in real Caffe; test every `test_interval` and at the end.
    `progress` gets the display lines, `tick()` is called after every iteration (a bar)."""
    say = progress or (lambda line: None)
    from viewer.engines import available_engines

    if "caffe" not in available_engines():
        raise TrainingError("train --engine caffe needs real Caffe: run `make caffe`")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(threads))
    from viewer.engines.caffe_engine import import_caffe

    caffe = import_caffe()
    data, out = Path(data), Path(out)
    deploy = arch.deploy()
    score = netgraph.score_blob(deploy)
    image = next(iter(netgraph.input_shapes(deploy).values()))[1:]
    classes = netgraph.infer_shapes(deploy)[score][1]
    say(f"checking {data / 'train_lmdb'} and {data / 'test_lmdb'}")
    check_records(data / "train_lmdb", image, classes)
    test_count = check_records(data / "test_lmdb", image, classes)
    files = write_training_files(deploy, data, out, settings, test_count, "caffe", arch)
    caffe.set_random_seed(settings.seed)
    solver = caffe.get_solver(str(files["solver"]))
    run = CaffeRun(files, CaffeNet(deploy))
    s = settings
    recent, start = [], time.perf_counter()
    for it in range(s.max_iter):
        if s.test_interval and it and it % s.test_interval == 0:
            test = evaluate(solver, score, test_count, it)
            run.tests.append(test.as_dict())
            say(test.line("caffe"))
        solver.step(1)
        if tick is not None:
            tick()
        recent.append(float(solver.net.blobs["loss"].data))
        if (it + 1) % s.display == 0 or it + 1 == s.max_iter:
            run.losses.append((it + 1, float(np.mean(recent)), s.learning_rate(it)))
            say(f"iter {it + 1}/{s.max_iter}  loss {run.losses[-1][1]:.4f}  "
                f"lr {run.losses[-1][2]:.5f}  (caffe)")
            recent = []
    test = evaluate(solver, score, test_count, s.max_iter)
    run.tests.append(test.as_dict())
    say(test.line("caffe"))
    run.seconds = time.perf_counter() - start
    partial = files["caffemodel"].with_name(files["caffemodel"].name + ".part")
    solver.net.save(str(partial))
    os.replace(partial, files["caffemodel"])
    files["snapshot"] = out / f"{arch.model_name}_iter_{s.max_iter}.caffemodel"  # Caffe's own
    run.net = load_net(files["prototxt"], files["caffemodel"])
    summary = {"arch": arch.name, "engine": "caffe", "caffe": caffe.__version__, "settings": asdict(s),
               "seconds": round(run.seconds, 1), "final": run.final, "tests": run.tests,
               "losses": [list(l) for l in run.losses], "data": str(data),
               "files": {k: str(v) for k, v in files.items()}}
    write_summary(files["summary"], summary)
    save_curves(files["curves"], run.losses, run.tests)
    return run


def _count(path: Path) -> int:
    """Records in an LMDB, for turning --epochs into iterations (checked in full later)."""
    try:
        with open_lmdb(path) as db:
            return len(db)
    except DatasetError as err:
        raise TrainingError(f"{err}; make the dataset with "
                            "`python main.py dataset make --out DIR`") from None


def run(data: Path, out: Path, options: nets.TrainingOptions, threads: int = 2,
        arch: str = "lenet") -> Trained:
    """`main.py train --engine caffe`: the same options as the PyTorch run, run by Caffe, with
    a progress bar and the display lines on the terminal."""
    architecture = nets.ARCHITECTURES[arch]
    settings = options.settings(_count(Path(data) / "train_lmdb"), architecture.epochs)
    with progress.bar(settings.max_iter, f"train {arch}", "iter") as bar:
        result = train_with_caffe(data, out, settings, threads, progress.note, tick=bar.update,
                                  arch=architecture)
    return Trained("caffe", settings.max_iter, result.seconds, result.final, result.files)
