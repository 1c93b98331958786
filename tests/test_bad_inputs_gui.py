"""Hostile inputs in the window: a dialog each, the previous image and model still usable,
worker failures shown as messages. The inputs are the ones of `test_bad_inputs.py`."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from bad_inputs import TINY_NET, encoded, png_declaring, write_net_pair
from gui_helpers import (MAP_TIMEOUT, generated_plate, load_model, open_window,  # noqa: F401
                         plate_file, settings, window)
from viewer.files import paths
from viewer.net import cost
from viewer.maps.planning import size_text
from viewer.maps.images import scaled_size


def still_maps(window, qtbot) -> None:
    """The window's current image and model still produce a map."""
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        window.controller.request_map()
    assert window.state.fm.image_shape == window.state.image.pixels.shape[:2]


BROKEN_IMAGES = {
    "empty.png": (b"", "is empty (0 bytes)"),
    "notes.jpg": (b"shopping list\n", "is not an image"),
    "cut.jpg": (encoded(Image.fromarray(generated_plate()), "JPEG")[:400], "damaged or truncated"),
    "bomb.png": (png_declaring(60_000, 60_000), "decompression bomb"),
}


@pytest.mark.parametrize("name", list(BROKEN_IMAGES))
def test_a_broken_image_is_a_dialog_and_the_plate_stays(window, qtbot, tmp_path, name):
    data, message = BROKEN_IMAGES[name]
    (tmp_path / name).write_bytes(data)
    before = (window.state.image, window.state.fm, window.state.generation)
    assert not window.files.open_image(tmp_path / name)
    assert len(window.errors.errors) == 1
    assert name in window.errors.errors[0] and message in window.errors.errors[0]
    assert (window.state.image, window.state.fm, window.state.generation) == before
    still_maps(window, qtbot)


def _broken_models(folder: Path) -> dict[str, tuple[Path, Path, str]]:
    proto, weights = write_net_pair(folder, TINY_NET.replace("dim: 12 dim: 12",
                                                             "dim: 28 dim: 28"))
    cut = folder / "cut.caffemodel"
    cut.write_bytes(weights.read_bytes()[:300])
    unknown = folder / "unknown.prototxt"
    unknown.write_text(proto.read_text().replace('type: "ReLU"', 'type: "Swish"'))
    mismatch = folder / "mismatch.prototxt"
    mismatch.write_text(proto.read_text().replace("num_output: 5", "num_output: 9"))
    return {
        "truncated caffemodel": (proto, cut, "cut.caffemodel"),
        "swapped files": (weights, proto, "not a text prototxt"),
        "unknown layer": (unknown, weights, "'relu1' (Swish)"),
        "shapes disagree": (mismatch, weights, "layer 'ip1'"),
    }


@pytest.mark.parametrize("case", ["truncated caffemodel", "swapped files", "unknown layer",
                                  "shapes disagree"])
def test_a_broken_model_is_a_dialog_and_the_model_stays(window, qtbot, tmp_path, case):
    proto, weights, message = _broken_models(tmp_path)[case]
    model, image = window.state.model, window.state.image
    assert load_model(qtbot, window, proto, weights) == "failed"
    assert len(window.errors.errors) == 1 and message in window.errors.errors[0]
    assert window.state.model is model and window.state.image is image
    still_maps(window, qtbot)


# Small enough that an 800x600 photo is over onnxruntime's estimate above scale 0.67 and over
# the blas engine's above 1.15, so the test shows both caps without allocating gigabytes.
SMALL_LIMIT = 128 * 2**20


def test_a_large_photo_caps_the_scale_where_its_pass_fits_on_the_lean_engine(
        window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(cost, "MEMORY_LIMIT", SMALL_LIMIT)
    Image.new("L", (800, 600), 200).save(tmp_path / "photo.png")
    window.scale.set_scale(2.0)
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        assert window.files.open_image(tmp_path / "photo.png")
    dense = window.state.model.dense
    assert dense.engine_name == "onnx"
    limit = dense.planner.max_scale((600, 800))
    assert limit == 1.15
    height, width = scaled_size((600, 800), limit)
    onnx_need = dense.planner.forward_bytes(height, width)
    blas_need = dense.planner.forward_bytes(height, width, engine=dense.planner.lean_engine)
    assert blas_need <= SMALL_LIMIT < onnx_need      # the cap is blas's, above onnx's own
    assert dense.planner.forward_bytes(*scaled_size((600, 800), limit + 0.01),
                               engine=dense.planner.lean_engine) > SMALL_LIMIT
    assert window.scale.spin.maximum() == pytest.approx(limit)
    assert window.scale.slider.maximum() == round(limit * 100)
    tip = window.scale.spin.toolTip()
    assert f"At most {limit:g}" in tip and "800x600 image on 'onnx' or 'blas'" in tip
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        window.scale.set_scale(3.0, emit=True)           # the most the control allows
    assert window.state.fm.scale == pytest.approx(limit) and window.state.fm.engine == "blas"
    assert window.state.fm.image_shape == (600, 800)
    # the note leads the status line, so a narrow window's elided line keeps it (issue 27)
    assert window.summary.full.startswith(
        f"the {width}x{height} input needs {size_text(onnx_need)} on 'onnx'; "
        f"using 'blas' ({size_text(blas_need)}) | ")
    assert window.summary.full.endswith(" ms on blas")
    assert window.errors.errors == []
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        window.scale.set_scale(0.5, emit=True)           # onnx fits again: no note
    assert window.state.fm.engine == "onnx"
    assert window.summary.full.endswith(" ms on onnx")


def test_an_image_below_the_window_then_a_normal_one_restores_the_scale_range(window, qtbot,
                                                                            tmp_path):
    Image.new("L", (1, 1), 128).save(tmp_path / "dot.png")
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        assert window.files.open_image(tmp_path / "dot.png")
    assert window.state.fm.probs.shape[1:] == (1, 1)
    Image.fromarray(generated_plate()).save(tmp_path / "plate2.png")
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        assert window.files.open_image(tmp_path / "plate2.png")
    assert window.scale.spin.maximum() == 3.0 and window.scale.value() <= 3.0
    assert window.state.fm.image_shape == (96, 260)


def test_a_bundled_model_reopened_after_errors_works(window, qtbot, tmp_path):
    proto, weights, _ = _broken_models(tmp_path)["truncated caffemodel"]
    assert load_model(qtbot, window, proto, weights) == "failed"
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        assert window.files.open_model(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS)
    assert window.state.model.prototxt == paths.FCN_PROTOTXT
