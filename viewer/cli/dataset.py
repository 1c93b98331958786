"""The `dataset` subcommand: `dataset make` writes the LMDBs, `dataset show` prints and draws them.

`viewer.cli` calls `register(subparsers)`; the heavy imports wait until a command runs.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from viewer.cli.options import positive_count, seed_value
from viewer.dataset import DEFAULT_COUNT
from viewer.dataset.fonts import DEFAULT_FACES, FACE_SETS


class _SplitBars:
    """make_dataset's progress callback: a tqdm bar per split (viewer.progress)."""

    def __init__(self) -> None:
        self.bars: dict = {}

    def __call__(self, split: str, done: int, total: int) -> None:
        from viewer import progress

        bar = self.bars.get(split)
        if bar is None:
            bar = self.bars[split] = progress.bar(total, split, "window")
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def cmd_make(args: argparse.Namespace) -> int:
    """Write DIR/train_lmdb and DIR/test_lmdb of synthetic plate-character windows."""
    from viewer.dataset.make import make_dataset
    from viewer.dataset.windows import WindowSpec

    bars = _SplitBars()
    try:
        summary = make_dataset(args.out, args.count, args.seed, test_count=args.test_count,
                               progress=bars, overwrite=args.force,
                               spec=WindowSpec(faces=args.faces))
    finally:
        bars.close()
    print(f"wrote {summary.train_path} ({summary.train_count} windows)")
    print(f"wrote {summary.test_path} ({summary.test_count} windows)")
    print(f"{summary.windows_per_second:.0f} windows/s, {summary.seconds:.1f} s, "
          f"seed {summary.seed}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """Print the records of an LMDB and save a contact sheet of them."""
    from viewer.dataset.make import show_records

    key = args.key
    if key is not None and key.isdigit() and len(key) < 8:
        key = int(key)  # "6" means record 00000006
    show_records(args.lmdb, key=key, out_png=args.out, limit=args.limit)
    return 0


def register(subparsers) -> None:
    """Add `dataset make` and `dataset show` to the main parser's subcommands."""
    ds = subparsers.add_parser("dataset", help="make or inspect the Caffe LMDB training data")
    sub = ds.add_subparsers(dest="dataset_command", required=True)

    make = sub.add_parser("make", help="write train_lmdb and test_lmdb of synthetic windows")
    make.add_argument("--out", type=Path, required=True, help="output folder")
    make.add_argument("--count", type=int, default=DEFAULT_COUNT,
                      help=f"windows in both splits together (default {DEFAULT_COUNT})")
    make.add_argument("--test-count", type=int, default=None,
                      help="windows in test_lmdb (default: 10%% of --count)")
    make.add_argument("--seed", type=seed_value, default=0, help="random seed (default 0)")
    make.add_argument("--force", action="store_true",
                      help="replace existing LMDBs in --out")
    make.add_argument("--faces", choices=FACE_SETS, default=DEFAULT_FACES,
                      help="the plates' faces: the Debian packages' (default, LeNet's data), "
                           "the nine bundled DINish, debian+dinish (BNNet's data: all but three "
                           "DINish faces), or the three held out for bench.read_unseen")
    make.set_defaults(func=cmd_make)

    show = sub.add_parser("show", help="print records and save a contact sheet PNG")
    show.add_argument("lmdb", type=Path, help="an LMDB folder, e.g. DIR/test_lmdb")
    show.add_argument("--key", help="one record: its key (00000006) or index (6)")
    show.add_argument("--out", type=Path, default=None,
                      help="contact sheet PNG (default: <lmdb>_sheet.png beside it)")
    show.add_argument("--limit", type=positive_count, default=128,
                      help="records to show, at least 1 (default 128)")
    show.set_defaults(func=cmd_show)
