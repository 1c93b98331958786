"""What a training run leaves in its output folder: the file names, Caffe's training files, the
pictures and the run summary.

Both engines (`train --engine torch` and `--engine caffe`) write the same set under the same
names, so the names and the writing live here once; each engine's module adds only what its
own run measured.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from viewer.caffe.model_io import prototxt_text, write_net
from viewer.caffe.proto import caffe_pb2
from viewer.files.safe_write import write_text_atomic
from viewer.maps.export import save_png
from viewer.maps.labels import labels_for
from viewer.net import netgraph
from viewer.training import nets
from viewer.training.curves import mistakes_sheet, save_curves

LENET = nets.ARCHITECTURES["lenet"]
MISTAKES_SHOWN = 128   # test windows on the mistakes sheet

TRAIN_TEST_HEADER = """\
# Train/test net of {model}.prototxt for real Caffe:
#   caffe train --solver {solver}
# run from the folder `main.py train` ran in (the paths below are relative to it).
# The Data layers scale pixels by transform_param, so this net has no Power layer: the deploy
# net's "scale" layer does the same at inference. conv1 sees identical values in both nets, so
# the weights Caffe writes here load unchanged into {model}.prototxt.
"""
# The solver file says which engine ran it: the same SGD either way.
SOLVER_HEADERS = {
    "torch": "# Caffe's solver for {train_test}; `main.py train` ran the same SGD (seed {seed})"
             " in PyTorch.\n",
    "caffe": "# Caffe's solver for {train_test}; `main.py train --engine caffe` ran it in pycaffe"
             " (seed {seed}).\n",
}


@dataclass
class Trained:
    """A finished run as `main.py train` reports it, whichever engine ran it."""

    engine: str
    iterations: int
    seconds: float
    final: dict                  # the last test's figures (`metrics.Evaluation.as_dict`)
    files: dict[str, Path]


def output_files(out: Path, arch: nets.Architecture = LENET) -> dict[str, Path]:
    """Where a run of `arch` writes in `out`: the deploy pair, Caffe's training files, labels,
    the curves and the summary (the engine may add its own, such as the mistakes sheet)."""
    name = arch.model_name
    return {"prototxt": out / f"{name}.prototxt", "caffemodel": out / f"{name}.caffemodel",
            "train_test": out / arch.train_test_name, "solver": out / arch.solver_name,
            "labels": out / "labels.txt", "curves": out / f"{name}_training.png",
            "summary": out / f"{name}_training.json"}


def write_training_files(deploy: caffe_pb2.NetParameter, data: Path, out: Path,
                         settings: nets.SolverSettings, test_count: int,
                         engine: str, arch: nets.Architecture = LENET) -> dict[str, Path]:
    """The deploy prototxt, Caffe's train/test net and solver, and labels.txt, into `out`.

    Written for either engine, so that a PyTorch run can be repeated in real Caffe as it is."""
    out.mkdir(parents=True, exist_ok=True)
    files = output_files(out, arch)
    write_text_atomic(files["prototxt"], prototxt_text(deploy))
    train_test = nets.train_test_net(deploy, str(data / "train_lmdb"), str(data / "test_lmdb"),
                                     settings.batch_size, settings.test_batch_size)
    write_text_atomic(files["train_test"], TRAIN_TEST_HEADER.format(
        model=arch.model_name, solver=files["solver"]) + prototxt_text(train_test))
    solver = nets.solver(settings, str(files["train_test"]), test_count,
                         str(out / arch.model_name))
    write_text_atomic(files["solver"], SOLVER_HEADERS[engine].format(
        train_test=files["train_test"].name, seed=settings.seed) + nets.solver_text(solver))
    outputs = netgraph.infer_shapes(deploy)[netgraph.score_blob(deploy)][1]
    write_text_atomic(files["labels"], "\n".join(labels_for(outputs)) + "\n")
    return files


def write_summary(path: Path, summary: dict) -> None:
    """The run's JSON summary (settings, figures, curves, files), written atomically."""
    write_text_atomic(path, json.dumps(summary, indent=1) + "\n")


def export_torch_run(run, out: Path, data: Path, settings: nets.SolverSettings, test_set,
                     record: dict, arch: nets.Architecture = LENET) -> dict[str, Path]:
    """Write a PyTorch run (`solver.TrainingRun`): the deploy pair through our Caffe writer, the
    Caffe training files, labels, the curves, the mistakes sheet, and the summary with `record`
    (the command and the versions) in front."""
    files = write_training_files(run.net.param, data, out, settings, run.final.count, "torch",
                                 arch)
    files["mistakes"] = out / f"{arch.model_name}_mistakes.png"
    write_net(run.net, files["prototxt"], files["caffemodel"])
    tests = [t.as_dict() for t in run.tests]
    save_curves(files["curves"], run.losses, tests)
    predicted = run.predicted
    wrong = np.flatnonzero(predicted != test_set.labels)[:MISTAKES_SHOWN]
    save_png(mistakes_sheet(test_set.images[wrong], test_set.labels[wrong], predicted[wrong],
                            labels_for(run.num_outputs)), files["mistakes"])
    write_summary(files["summary"], {
        **record, "arch": arch.name, "engine": "torch", "settings": asdict(settings), "threads": run.threads,
        "seconds": round(run.seconds, 1), "final": run.final.as_dict(), "tests": tests,
        "losses": [list(l) for l in run.losses],
        "confusions": [list(c) for c in run.confusions],
        "files": {k: str(v) for k, v in files.items()},
    })
    return files
