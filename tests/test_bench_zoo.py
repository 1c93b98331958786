"""bench/zoo.py's full-size nets are the papers' nets: their blob and parameter sizes, as
`python -m bench.zoo --sizes` prints them."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sizes() -> dict:
    result = subprocess.run([sys.executable, "-m", "bench.zoo", "--sizes"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("name, layers, parameters", [
    ("GoogLeNet", 143, 6_998_552),      # about 7M (Szegedy et al.), without the auxiliary heads
    ("ResNet-50", 229, 25_610_205),     # 25.6M, He et al.; BatchNorm statistics included
])
def test_the_full_size_nets_have_the_papers_sizes(sizes, name, layers, parameters):
    net = sizes[name]
    assert net["layers"] == layers
    assert net["prob"] == [1, 1000]
    assert net["parameters"] == parameters
    assert net["size"] == 448
    assert net["last_pool_cells"] == [8, 8]   # 448 / 32 - 7 + 1 cells a side after surgery
