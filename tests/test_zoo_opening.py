"""Issue 27 item 5 and 7: a zoo classifier opens in seconds. The surgery is checked on a few
windows when the model loads (its first map follows the check), the timing is bounded, and
the question before the surgery says what it will change."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gallery
from bench.squeezenet import squeezenet
from viewer.app import jobs, session
from viewer.caffe import model_io
from viewer.files import paths
from viewer.gui.model_loader import surgery_question
from viewer.maps.featuremap import DenseClassifier
from viewer.maps.sliding import compare_with_windows


@pytest.fixture(scope="module")
def squeeze_fire() -> model_io.CaffeNet:
    return gallery.load("squeezenet_fire")


def test_the_surgery_question_says_what_will_change_in_this_net(squeeze_fire):
    question = surgery_question(Path("squeezenet.prototxt"), squeeze_fire)
    assert question == ("squeezenet.prototxt is a classifier. The net surgery will give its "
                        "global pooling pool10 the kernel of its input, stride 1, so it maps "
                        "whole images, and check that the scores stay the same. Perform it?")
    assert "InnerProduct" not in question
    lenet = session.read_net(paths.CLASSIFIER_PROTOTXT, paths.CLASSIFIER_WEIGHTS)
    assert session.surgery_changes(lenet) == ("cast its InnerProduct layers ip1, ip2-alpha into "
                                              "convolutions with the same weights")


def test_the_check_gets_fewer_windows_on_a_zoo_net():
    lenet = session.read_net(paths.CLASSIFIER_PROTOTXT, paths.CLASSIFIER_WEIGHTS)
    full = model_io.CaffeNet(model_io.parse_prototxt(squeezenet(), "squeezenet.prototxt")[0])
    assert session.check_count(lenet) == 8
    assert session.check_count(full) == 1        # 2 windows: 4 x 0.7 G flops > the budget


def test_a_classifier_is_checked_when_it_loads_so_its_first_map_follows_the_check(
        squeeze_fire, tmp_path):
    proto, weights = tmp_path / "sq.prototxt", tmp_path / "sq.caffemodel"
    model_io.write_net(squeeze_fire, proto, weights)
    read = jobs.read_model(proto, weights)
    assert read.needs_surgery
    model = jobs.build_model(read.net, jobs.ModelTag(1, proto, weights, "numpy"))
    check = model.verification
    assert check is not None and check.passed and check.engine == "numpy"
    assert check.inputs == 2 * session.check_count(squeeze_fire) == 16
    assert check.max_abs_diff < 1e-4
    # the timing keeps it: no second check
    image = gallery.image(80, 96)
    timed = jobs.check_surgery(model, image, 1.0)
    assert timed.verification is check and timed.comparison.windows == 5 * 9


def test_the_timing_stops_at_its_budget_and_extrapolates(squeeze_fire):
    dense = DenseClassifier(squeeze_fire, "numpy")
    image = gallery.image(120, 140)
    whole = compare_with_windows(dense, image, 1.0, batch=4)
    cut = compare_with_windows(dense, image, 1.0, batch=4, budget_s=0.0)
    assert whole.windows == cut.windows == 15 * 20 and whole.timed == -1 and not whole.sampled
    assert cut.timed == 4 and cut.sampled
    assert cut.max_abs_diff <= whole.max_abs_diff + 1e-6
    # 4 windows timed, the 300 extrapolated: within a factor of the whole (timing noise)
    assert 0.2 < cut.windows_ms / whole.windows_ms < 5


def test_a_batch_of_windows_holds_at_most_its_memory(squeeze_fire, monkeypatch):
    from viewer.maps import sliding

    seen = []
    dense = DenseClassifier(squeeze_fire, "numpy")
    image = gallery.image(72, 80)
    together = compare_with_windows(dense, image, 1.0)
    monkeypatch.setattr(sliding, "BATCH_BYTES", 1)      # one window a batch
    real = sliding.window_batches
    monkeypatch.setattr(sliding, "window_batches",
                        lambda *args: (seen.append(args[-1]), real(*args))[1])
    result = compare_with_windows(dense, image, 1.0)
    # the same windows, one at a time (a padded 3x3 sees zeros at a window's edge: the
    # per-window scores differ from the dense ones alike in both)
    assert seen == [1] and result.windows == together.windows == 3 * 5
    assert abs(result.max_abs_diff - together.max_abs_diff) < 1e-4
    assert np.isfinite(result.windows_ms)
