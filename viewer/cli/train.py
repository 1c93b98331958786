"""`main.py train`: train the plate LeNet from a dataset folder and export it for Caffe.

Writes into --out: `lenet_plates.prototxt` + `.caffemodel` (the deploy net, through our Caffe
writer), `lenet_train_test.prototxt` + `lenet_solver.prototxt` (the same training for real
Caffe), `labels.txt`, `lenet_plates_training.png` + `.json` (curves, figures, the command) and
`lenet_plates_mistakes.png` (test windows it gets wrong). `--evaluate` measures a saved model
on the test LMDB instead, with the opencv engine.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
from dataclasses import asdict
from pathlib import Path

import numpy as np

from viewer import progress
from viewer.maps.labels import labels_for
from viewer.caffe.model_io import write_net
from viewer.files.safe_write import write_text_atomic
from viewer.training import nets
from viewer.errors import TrainingError

MODEL_NAME = "lenet_plates"
TRAIN_TEST_NAME = "lenet_train_test.prototxt"
SOLVER_NAME = "lenet_solver.prototxt"
DEFAULT_EPOCHS = 8.0  # over 540k windows: 67,500 iterations, `make model` near 17 min on 2 cores
MISTAKES_SHOWN = 128

TRAIN_TEST_HEADER = """\
# Train/test net of {model}.prototxt for real Caffe:
#   caffe train --solver {solver}
# run from the folder `main.py train` ran in (the paths below are relative to it).
# The Data layers scale pixels by transform_param, so this net has no Power layer: the deploy
# net's "scale" layer does the same at inference. conv1 sees identical values in both nets, so
# the weights Caffe writes here load unchanged into {model}.prototxt.
"""
SOLVER_HEADER = """\
# Caffe's solver for {train_test}; `main.py train` ran the same SGD (seed {seed}) in PyTorch.
"""


def _import_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise TrainingError("training needs PyTorch: pip install -e '.[train]' "
                            "(torch==2.13.0, the CPU build)") from None


def settings_from_args(args: argparse.Namespace, train_count: int) -> nets.SolverSettings:
    """Solver settings; --epochs becomes a whole number of iterations over `train_count`."""
    if args.iters is not None:
        iters = args.iters
    else:
        iters = math.ceil((args.epochs or DEFAULT_EPOCHS) * train_count / args.batch_size)
    if iters < 1:
        raise TrainingError("train for at least one iteration (--iters or --epochs)")
    interval = args.test_interval if args.test_interval is not None else max(1, iters // 10)
    power = args.lr_power if args.lr_power is not None else nets.DEFAULT_POWER[args.lr_policy]
    return nets.SolverSettings(max_iter=iters, batch_size=args.batch_size,
                               base_lr=args.base_lr, lr_policy=args.lr_policy, power=power,
                               test_interval=interval, display=max(1, min(100, iters // 20)),
                               seed=args.seed)


def export(run, out: Path, data: Path, settings: nets.SolverSettings, test_set,
           extra: dict) -> dict[str, Path]:
    """Write the deploy pair, the Caffe training files, labels, pictures and the run summary."""
    from viewer.training.caffe_train import write_training_files
    from viewer.training.curves import mistakes_sheet, save_curves, save_png

    files = write_training_files(run.net.param, data, out, settings, run.final.count)
    solver = nets.solver(settings, str(files["train_test"]), run.final.count,
                         str(out / MODEL_NAME))
    write_text_atomic(files["solver"], SOLVER_HEADER.format(
        train_test=files["train_test"].name, seed=settings.seed) + nets.solver_text(solver))
    files["mistakes"] = out / f"{MODEL_NAME}_mistakes.png"
    write_net(run.net, files["prototxt"], files["caffemodel"])
    tests = [t.as_dict() for t in run.tests]
    save_curves(files["curves"], run.losses, tests)
    predicted = run.predicted
    wrong = np.flatnonzero(predicted != test_set.labels)[:MISTAKES_SHOWN]
    save_png(files["mistakes"], mistakes_sheet(test_set.images[wrong], test_set.labels[wrong],
                                               predicted[wrong], labels_for(run.num_outputs)))
    summary = {
        **extra, "engine": "torch", "settings": asdict(settings), "threads": run.threads,
        "seconds": round(run.seconds, 1), "final": run.final.as_dict(), "tests": tests,
        "losses": [list(l) for l in run.losses],
        "confusions": [list(c) for c in run.confusions],
        "files": {k: str(v) for k, v in files.items()},
    }
    write_text_atomic(files["summary"], json.dumps(summary, indent=1) + "\n")
    return files


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Test figures of the model in --out on --data's test LMDB, run by the opencv engine."""
    from viewer.net.weights import load_net
    from viewer.training.data import TEST_LMDB, load_lmdb
    from viewer.training.metrics import engine_scores, evaluation, top_confusions

    net = load_net(args.out / f"{MODEL_NAME}.prototxt", args.out / f"{MODEL_NAME}.caffemodel")
    test_set = load_lmdb(Path(args.data) / TEST_LMDB)
    scores = engine_scores(net, test_set.images)
    result = evaluation(scores, test_set.labels, 0)
    confusions = top_confusions(test_set.labels, scores.argmax(axis=1),
                                labels_for(scores.shape[1]))
    if args.json:
        print(json.dumps({**result.as_dict(), "confusions": confusions,
                          "model": str(args.out), "test_lmdb": str(test_set.source)}, indent=2))
    else:
        print(f"{args.out / MODEL_NAME} on {test_set.source} (opencv): accuracy "
              f"{result.accuracy:.4f}, characters {result.char_accuracy:.4f}, background "
              f"{result.background_accuracy:.4f}, loss {result.loss:.4f} ({result.count} windows)")
        print("most frequent mistakes (truth>predicted): " +
              ", ".join(f"{t}>{p} {n}" for t, p, n in confusions))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Load the LMDBs, train, export, print where everything went."""
    if args.evaluate:
        return cmd_evaluate(args)
    if args.engine == "caffe":
        from viewer.training.caffe_train import cmd_train_caffe
        return cmd_train_caffe(args)
    _import_torch()
    import torch

    from viewer.training.data import load_dataset
    from viewer.training.solver import train

    if args.threads < 1:
        raise TrainingError("--threads must be at least 1")

    say = progress.note                 # lines that keep the bar below them
    train_set, test_set = load_dataset(args.data)
    say(f"train {len(train_set)} windows ({100 * train_set.background_share:.1f}% background), "
        f"test {len(test_set)}, from {args.data}")
    settings = settings_from_args(args, len(train_set))
    deploy = nets.lenet_deploy()
    with progress.bar(settings.max_iter, "train", "iter") as bar:
        run = train(deploy, train_set, test_set, settings, threads=args.threads, progress=say,
                    tick=bar.update)
    dataset_info = Path(args.data) / "dataset.json"
    extra = {
        "command": (f"python main.py train --data {args.data} --out {args.out} --iters "
                    f"{settings.max_iter} --batch-size {settings.batch_size} --base-lr "
                    f"{settings.base_lr:g} --lr-policy {settings.lr_policy} --lr-power "
                    f"{settings.power:g} --seed {settings.seed} --threads {args.threads}"),
        "data": str(args.data), "train_count": len(train_set), "test_count": len(test_set),
        "dataset": json.loads(dataset_info.read_text()) if dataset_info.is_file() else None,
        "torch": torch.__version__, "python": platform.python_version(),
    }
    files = export(run, args.out, Path(args.data), settings, test_set, extra)
    final = run.final
    if args.json:
        print(json.dumps({"final": final.as_dict(), "seconds": round(run.seconds, 1),
                          "files": {k: str(v) for k, v in files.items()}}, indent=2))
    else:
        print(f"trained {settings.max_iter} iterations in {run.seconds / 60:.1f} min: "
              f"test accuracy {final.accuracy:.4f} (characters {final.char_accuracy:.4f}, "
              f"background {final.background_accuracy:.4f})")
        for path in files.values():
            print(f"wrote {path}")
    return 0


def register(subparsers) -> None:
    """Add the `train` subcommand."""
    p = subparsers.add_parser("train", help="train the plate LeNet and export it for Caffe",
                              description="Train the plate LeNet on a dataset folder's LMDBs (PyTorch, "
                              "CPU) and export it as Caffe files.")
    p.add_argument("--data", type=Path, required=True,
                   help="dataset folder with train_lmdb and test_lmdb (from `dataset make`)")
    p.add_argument("--out", type=Path, required=True, help="output folder, e.g. models")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--iters", type=int, help="SGD iterations")
    length.add_argument("--epochs", type=float,
                        help=f"passes over the training set (default {DEFAULT_EPOCHS:g})")
    p.add_argument("--batch-size", type=int, default=64, help="windows per iteration (64)")
    p.add_argument("--base-lr", type=float, default=0.01, help="initial learning rate (0.01)")
    p.add_argument("--lr-policy", choices=nets.LR_POLICIES, default="poly",
                   help="Caffe's rate policy: poly (the default: linearly down to 0 at the last "
                   "iteration), inv (the LeNet example's) or fixed")
    p.add_argument("--lr-power", type=float,
                   help="power of the poly or inv policy (1 for poly, 0.75 for inv)")
    p.add_argument("--test-interval", type=int, help="iterations between tests (a tenth)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, order, dropout (0)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (2)")
    p.add_argument("--engine", choices=("torch", "caffe"), default="torch",
                   help="torch (default), or caffe: real Caffe runs lenet_solver.prototxt "
                   "(needs `make caffe`)")
    p.add_argument("--evaluate", action="store_true",
                   help="do not train: measure the model already in --out on --data's "
                   "test_lmdb with the opencv engine (needs no PyTorch)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=cmd_train)
