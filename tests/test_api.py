"""The package root's small API reads the sample plate, and `import viewer` stays light."""
from __future__ import annotations

import subprocess
import sys

import pytest

import viewer
from viewer.files import paths


def test_the_root_api_reads_the_sample_plate():
    net = viewer.load_net(paths.CLASSIFIER_PROTOTXT, paths.CLASSIFIER_WEIGHTS)
    fcn = viewer.make_fully_convolutional(net).net
    check = viewer.verify_equivalence(net, fcn, count=2, engine="numpy")
    assert check.passed and check.max_abs_diff < 1e-4
    dense = viewer.DenseClassifier(fcn)
    reading, fm = viewer.auto_read(dense, viewer.load_image(paths.SAMPLE_PLATE))
    assert reading.text == "RK857AI"
    assert isinstance(fm, viewer.FeatureMap) and isinstance(fm.geometry, viewer.Geometry)
    assert viewer.read_plate(fm).text == "RK857AI"


def test_every_name_of_the_api_is_defined_where_the_root_says():
    for name in viewer.__all__:
        assert getattr(viewer, name) is not None
    assert "DenseClassifier" in dir(viewer)
    with pytest.raises(AttributeError, match="has no attribute 'DenseClassifer'"):
        viewer.DenseClassifer


def test_importing_the_package_loads_no_layer():
    code = ("import sys, viewer; print(sorted(m for m in sys.modules "
            "if m.startswith('viewer.') or m in ('numpy', 'PyQt5', 'onnx')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
