"""`train --engine torch` (the default): PyTorch runs Caffe's solver on the LMDBs of `dataset
make`, and the trained net is written as Caffe files.

PyTorch is an extra (`pip install -e '.[train]'`), so nothing here imports it before
`require_torch` has said clearly that it is missing; the rest of the viewer never needs it.
"""
from __future__ import annotations

import json
import platform
from pathlib import Path

from viewer import progress
from viewer.errors import TrainingError
from viewer.training import nets
from viewer.training.artifacts import Trained, export_torch_run
from viewer.training.data import load_dataset


def require_torch() -> None:
    """Import PyTorch, or raise a TrainingError that says how to install it (a broken install
    fails here too, not in the middle of a run)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise TrainingError("training needs PyTorch: pip install -e '.[train]' "
                            "(torch==2.13.0, the CPU build)") from None


def require_torch_installed() -> None:
    """The TrainingError of `require_torch` when PyTorch is not installed at all, found
    without importing it (which takes seconds)."""
    import importlib.util

    try:
        found = importlib.util.find_spec("torch") is not None
    except ValueError:                  # in sys.modules as None: import refused
        found = False
    if not found:
        require_torch()


def command_record(data: Path, out: Path, settings: nets.SolverSettings, threads: int,
                   train_count: int, test_count: int, arch: str = "lenet") -> dict:
    """The summary's record of how the run can be repeated: the command with every setting
    spelled out, the data it read (with the dataset's own record), and the versions."""
    import torch

    dataset_info = Path(data) / "dataset.json"
    return {
        "command": (f"python main.py train --arch {arch} --data {data} --out {out} --iters "
                    f"{settings.max_iter} --batch-size {settings.batch_size} --base-lr "
                    f"{settings.base_lr:g} --lr-policy {settings.lr_policy} --lr-power "
                    f"{settings.power:g} --seed {settings.seed} --threads {threads}"),
        "data": str(data), "train_count": train_count, "test_count": test_count,
        "dataset": json.loads(dataset_info.read_text()) if dataset_info.is_file() else None,
        "torch": torch.__version__, "python": platform.python_version(),
    }


def run(data: Path, out: Path, options: nets.TrainingOptions, threads: int = 2,
        arch: str = "lenet") -> Trained:
    """Load the LMDBs, train with a progress bar and the display lines on the terminal, and
    export the net and the pictures into `out`."""
    if threads < 1:
        raise TrainingError("--threads must be at least 1")
    require_torch_installed()                    # said first: without it nothing else helps
    train_set, test_set = load_dataset(data)     # checked before PyTorch takes seconds to load
    require_torch()
    from viewer.training.solver import train

    say = progress.note                 # lines that keep the bar below them
    say(f"train {len(train_set)} windows ({100 * train_set.background_share:.1f}% background), "
        f"test {len(test_set)}, from {data}")
    architecture = nets.ARCHITECTURES[arch]
    settings = options.settings(len(train_set), architecture.epochs)
    with progress.bar(settings.max_iter, f"train {arch}", "iter") as bar:
        result = train(architecture.deploy(), train_set, test_set, settings, threads=threads,
                       progress=say, tick=bar.update)
    record = command_record(data, out, settings, threads, len(train_set), len(test_set), arch)
    files = export_torch_run(result, out, Path(data), settings, test_set, record, architecture)
    return Trained("torch", settings.max_iter, result.seconds, result.final.as_dict(), files)
