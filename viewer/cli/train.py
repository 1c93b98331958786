"""`main.py train`: its arguments and what it prints; `viewer.training` trains and writes.

The run writes into --out: `lenet_plates.prototxt` + `.caffemodel` (the deploy net, through our Caffe
writer), `lenet_train_test.prototxt` + `lenet_solver.prototxt` (the same training for real
Caffe), `labels.txt`, `lenet_plates_training.png` + `.json` (curves, figures, the command) and
`lenet_plates_mistakes.png` (test windows it gets wrong). `--evaluate` measures a saved model
on the test LMDB instead, with the opencv engine.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from viewer.training import nets


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Test figures of the model in --out on --data's test LMDB, run by the opencv engine."""
    from viewer.training.metrics import evaluate_saved

    name = nets.ARCHITECTURES[args.arch].model_name
    result, confusions, source = evaluate_saved(args.out, args.data, arch=args.arch)
    if args.json:
        print(json.dumps({**result.as_dict(), "confusions": confusions,
                          "model": str(args.out), "test_lmdb": str(source)}, indent=2))
    else:
        print(f"{args.out / name} on {source} (opencv): accuracy "
              f"{result.accuracy:.4f}, characters {result.char_accuracy:.4f}, background "
              f"{result.background_accuracy:.4f}, loss {result.loss:.4f} ({result.count} windows)")
        print("most frequent mistakes (truth>predicted): " +
              ", ".join(f"{t}>{p} {n}" for t, p, n in confusions))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train with the chosen engine (or only measure, with --evaluate), print where everything
    went."""
    if args.evaluate:
        return cmd_evaluate(args)
    from viewer.training import caffe_train, torch_train

    options = nets.TrainingOptions(iters=args.iters, epochs=args.epochs,
                                   batch_size=args.batch_size, base_lr=args.base_lr,
                                   lr_policy=args.lr_policy, lr_power=args.lr_power,
                                   test_interval=args.test_interval, seed=args.seed)
    engine = caffe_train if args.engine == "caffe" else torch_train
    run = engine.run(args.data, args.out, options, args.threads, args.arch)
    if args.json:
        print(json.dumps({"engine": run.engine, "final": run.final,
                          "seconds": round(run.seconds, 1),
                          "files": {k: str(v) for k, v in run.files.items()}}, indent=2))
    else:
        final = run.final
        print(f"trained {run.iterations} iterations{' in Caffe' * (run.engine == 'caffe')} in "
              f"{run.seconds / 60:.1f} min: test accuracy {final['accuracy']:.4f} (characters "
              f"{final['char_accuracy']:.4f}, background {final['background_accuracy']:.4f})")
        for path in run.files.values():
            print(f"wrote {path}")
    return 0


def register(subparsers) -> None:
    """Add the `train` subcommand."""
    p = subparsers.add_parser("train", help="train the plate LeNet and export it for Caffe",
                              description="Train the plate LeNet on a dataset folder's LMDBs (PyTorch, "
                              "CPU) and export it as Caffe files.")
    p.add_argument("--arch", choices=tuple(nets.ARCHITECTURES), default="lenet",
                   help="which plate net: lenet (the tutorial's, the default) or bnnet "
                   "(BatchNorm, three convolutions; files bnnet_plates.*)")
    p.add_argument("--data", type=Path, required=True,
                   help="dataset folder with train_lmdb and test_lmdb (from `dataset make`)")
    p.add_argument("--out", type=Path, required=True, help="output folder, e.g. models")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--iters", type=int, help="SGD iterations")
    length.add_argument("--epochs", type=float,
                        help=f"passes over the training set (default {nets.DEFAULT_EPOCHS:g}; "
                        f"bnnet {nets.BNNET_EPOCHS:g})")
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
