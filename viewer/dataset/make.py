"""Make the train/test LMDBs of plate-character windows, and show what an LMDB holds.

`make_dataset` writes `out_dir/train_lmdb` and `out_dir/test_lmdb` (Caffe Datum records, see
`lmdb_io`) plus `out_dir/dataset.json` saying how they were made. The two splits come from
independent random streams of one seed, so no plate gives windows to both.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, TextIO

import cv2
import numpy as np

from viewer.dataset import DEFAULT_COUNT
from viewer.errors import DatasetError
from viewer.dataset.fonts import DEFAULT_FACES, faces_of
from viewer.caffe.lmdb_io import Record, open_lmdb, shown, write_lmdb
from viewer.dataset.windows import WindowSpec, generate_windows
from viewer.maps.labels import BACKGROUND, CHARACTERS
from viewer.files.safe_write import check_output_path, prepare_output_folder, write_text_atomic
from viewer.maps.export import save_png

DEFAULT_TEST_FRACTION = 0.1
# A contact sheet larger than this many pixels is refused before it is allocated.
MAX_SHEET_PIXELS = 50_000_000
# What `dataset make` leaves in an LMDB folder; `--force` replaces only folders holding these.
LMDB_FILES = {"data.mdb", "lock.mdb"}

Progress = Callable[[str, int, int], None]  # (split name, windows written, windows in split)


@dataclass
class DatasetSummary:
    """What `make_dataset` wrote."""

    train_path: Path
    test_path: Path
    train_count: int
    test_count: int
    seed: int
    seconds: float

    @property
    def windows_per_second(self) -> float:
        return (self.train_count + self.test_count) / max(self.seconds, 1e-9)


def label_name(label: int) -> str:
    """The character of a label, "bg" for the background class."""
    if 0 <= label < len(CHARACTERS):
        return CHARACTERS[label]
    return "bg" if label == BACKGROUND else str(label)


def window_settings(spec: WindowSpec) -> dict:
    """The spec as dataset.json records it; the default face set unnamed, so that the
    default data's record is what it was before there was a choice."""
    settings = asdict(spec)
    if spec.faces == DEFAULT_FACES:
        del settings["faces"]
    return settings


def make_dataset(out_dir: str | os.PathLike, count: int = DEFAULT_COUNT, seed: int = 0, *,
                 test_count: int | None = None, progress: Progress | None = None,
                 overwrite: bool = False, spec: WindowSpec = WindowSpec()) -> DatasetSummary:
    """Write `count` windows: `test_count` (default 10%) to test_lmdb, the rest to train_lmdb.

    Deterministic for a given (count, test_count, seed). Refuses to replace existing non-empty
    LMDBs unless `overwrite`.
    """
    if count < 2:
        raise DatasetError(f"count must be at least 2 (one train and one test window), got {count}")
    n_test = round(count * DEFAULT_TEST_FRACTION) if test_count is None else int(test_count)
    if not 1 <= n_test < count:
        raise DatasetError(f"test count {n_test} must be between 1 and count-1 ({count - 1})")
    n_train = count - n_test
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out} exists and is not a folder")
    paths = {"train": out / "train_lmdb", "test": out / "test_lmdb"}
    for p in paths.values():
        if p.exists() and (not p.is_dir() or any(p.iterdir())):
            if not overwrite:
                raise DatasetError(f"{p} already exists and is not empty: choose another "
                                   f"--out or pass --force")
            check_replaceable(p)
    faces_of(spec.faces)  # fail early, with the packages to install, before any work
    created = not out.exists()
    prepare_output_folder(out)  # creates it, and says clearly if it cannot be written

    train_ss, test_ss = np.random.SeedSequence(seed).spawn(2)
    start = time.perf_counter()
    written: list[Path] = []
    try:
        for name, n, ss in (("train", n_train, train_ss), ("test", n_test, test_ss)):
            rng = np.random.default_rng(ss)
            windows = ((w.image, w.label) for w in generate_windows(n, rng, spec))
            report = (lambda done, name=name, n=n: progress(name, done, n)) if progress else None
            if report:
                report(0)
            write_lmdb(paths[name], windows, overwrite=overwrite, progress=report)
            written.append(paths[name])
    except BaseException:       # Ctrl+C in the test split: half a dataset is none, remove it
        for path in written:
            shutil.rmtree(path, ignore_errors=True)
        if created:             # and the --out folder too, when this run made it
            shutil.rmtree(out, ignore_errors=True)
        raise
    seconds = time.perf_counter() - start
    summary = DatasetSummary(paths["train"], paths["test"], n_train, n_test, seed, seconds)
    info = {
        "train_lmdb": "train_lmdb", "test_lmdb": "test_lmdb",
        "train_count": n_train, "test_count": n_test, "seed": seed,
        "characters": CHARACTERS, "background_label": BACKGROUND,
        "window": window_settings(spec), "fonts": [f.name for f in faces_of(spec.faces)],
        "command": f"python main.py dataset make --out {out} --count {count} --seed {seed}"
                   + ("" if spec.faces == DEFAULT_FACES else f" --faces {spec.faces}"),
    }
    write_text_atomic(out / "dataset.json", json.dumps(info, indent=1) + "\n")
    return summary


def check_replaceable(lmdb_dir: Path) -> None:
    """Refuse `--force` on a folder that is not an LMDB `dataset make` wrote: one holding
    other files, or without the dataset.json that `dataset make` writes beside it."""
    if not lmdb_dir.is_dir():
        raise DatasetError(f"refusing to replace {lmdb_dir}: it is not a folder")
    others = sorted(shown(p.name) for p in lmdb_dir.iterdir() if p.name not in LMDB_FILES)
    if others:
        raise DatasetError(f"refusing to replace {lmdb_dir}: it holds files an LMDB does not "
                           f"({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}); "
                           "--force replaces only LMDBs `dataset make` wrote")
    try:
        info = json.loads((lmdb_dir.parent / "dataset.json").read_text(encoding="utf-8"))
        ours = isinstance(info, dict) and lmdb_dir.name in (info.get("train_lmdb"),
                                                            info.get("test_lmdb"))
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise DatasetError(f"refusing to replace {lmdb_dir}: no dataset.json beside it says "
                           "`dataset make` wrote it; --force replaces only those LMDBs "
                           "(delete the folder yourself if it is no longer needed)")


def check_sheet_size(records: list[Record], columns: int = 16, zoom: int = 3) -> None:
    """Refuse records whose contact sheet would exceed MAX_SHEET_PIXELS (every cell is as
    large as the tallest and the widest record: 30000x1 and 1x30000 make 30000x30000 cells)."""
    height = max(r.image.shape[1] for r in records)
    width = max(r.image.shape[2] for r in records)
    columns = max(1, min(columns, len(records)))
    rows = (len(records) + columns - 1) // columns
    pixels = rows * (height * zoom + 20) * columns * (width * zoom + 4)
    if pixels > MAX_SHEET_PIXELS:
        raise DatasetError(f"records up to {width}x{height} pixels make a contact sheet of "
                           f"{pixels // 1_000_000} megapixels, more than the "
                           f"{MAX_SHEET_PIXELS // 1_000_000} allowed: show fewer (--limit) or "
                           "one record (--key)")


def contact_sheet(records: list[Record], columns: int = 16, zoom: int = 3) -> np.ndarray:
    """A grid of the records' images, each with its label written below it (RGB uint8).

    Refused before anything is allocated when it would exceed MAX_SHEET_PIXELS.
    """
    if not records:
        raise DatasetError("no records to show")
    check_sheet_size(records, columns, zoom)
    cell_h = max(r.image.shape[1] for r in records) * zoom
    cell_w = max(r.image.shape[2] for r in records) * zoom
    strip, gap = 16, 4
    columns = max(1, min(columns, len(records)))
    rows = (len(records) + columns - 1) // columns
    sheet = np.full((rows * (cell_h + strip + gap), columns * (cell_w + gap), 3), 255, np.uint8)
    for i, rec in enumerate(records):
        img = rec.image
        if img.dtype != np.uint8:
            img = np.clip(img * (255.0 if img.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        # Caffe's colour planes are BGR; of two planes, the first is shown
        img = img[2::-1].transpose(1, 2, 0) if img.shape[0] >= 3 else img[0]
        img = cv2.resize(img, (img.shape[1] * zoom, img.shape[0] * zoom),
                         interpolation=cv2.INTER_NEAREST)
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        r, c = divmod(i, columns)
        y, x = r * (cell_h + strip + gap), c * (cell_w + gap)
        sheet[y:y + img.shape[0], x:x + img.shape[1]] = img
        name = label_name(rec.label)
        colour = (200, 0, 0) if rec.label == BACKGROUND else (0, 0, 0)
        cv2.putText(sheet, f"{name} {shown(rec.key)[-4:]}", (x + 2, y + cell_h + 12),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.38, colour, 1, cv2.LINE_AA)
    return sheet


def show_records(lmdb_path: str | os.PathLike, key: str | int | None = None,
                 out_png: str | os.PathLike | None = None, limit: int = 128,
                 stream: TextIO | None = None) -> Path:
    """Print records (key, label, character, shape) and save a contact sheet PNG of them.

    With `key`, only that record; otherwise the first `limit`. The sheet goes to `out_png`
    (default: `<lmdb_path>_sheet.png` beside the LMDB), written atomically. Returns its path.
    """
    stream = stream or sys.stdout
    path = Path(lmdb_path)
    png = Path(out_png) if out_png else path.parent / f"{path.name}_sheet.png"
    check_output_path(png, inputs=(path,))  # never into the LMDB read, said before reading
    lines = []
    with open_lmdb(path) as db:
        if key is not None:
            try:
                records = [db.get(key)]
            except KeyError as exc:
                raise DatasetError(str(exc.args[0])) from None
        else:
            records = []
            for rec in db:
                records.append(rec)
                check_sheet_size(records)   # each record, so large ones stop early
                if len(records) >= limit:
                    break
            counts = db.label_counts()
            total = sum(counts.values())
            bg = counts.get(BACKGROUND, 0)
            lines.append(f"{path}: {total} records, {len(counts)} labels, background "
                         f"{bg} ({100 * bg / max(total, 1):.1f}%)")
    for rec in records:
        shape = "x".join(str(s) for s in rec.shape)
        lines.append(f"{shown(rec.key)}  label {rec.label:2d}  {label_name(rec.label):>2}  "
                     f"{shape}")
    # Saved before printing: a closed pipe must not lose the sheet.
    save_png(contact_sheet(records, zoom=8 if key is not None else 3), png, inputs=(path,))
    print("\n".join(lines), file=stream)
    print(f"contact sheet: {png}", file=stream)
    return png


__all__ = ["DEFAULT_COUNT", "DatasetSummary", "make_dataset", "show_records", "contact_sheet",
           "label_name"]
