"""The command line: `python main.py COMMAND`, one module per command group.

`main` is imported lazily, so that `netsurgery-viewer --help` and the GUI start without the
heavy modules a command needs.
"""
from __future__ import annotations

from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line; the exit code (0, 2 for a user's error, 3 for a failed check)."""
    from viewer.cli.run import main as run

    return run(argv)
