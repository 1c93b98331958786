"""argparse types shared by the commands, kept apart from viewer.cli so that the dataset CLI can
use them without importing the main CLI (which imports it)."""
from __future__ import annotations

import argparse
from typing import Callable


def whole_number(minimum: int, rule: str) -> Callable[[str], int]:
    """An argparse type for a whole number of at least `minimum`; `rule` starts the message."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{rule}, got {value}")
        return value
    return parse


# Counts (--jobs, --stride, --check-count): at least 1.
positive_count = whole_number(1, "must be at least 1")
# --seed: a whole number numpy accepts as a seed.
seed_value = whole_number(0, "a seed is 0 or more")
