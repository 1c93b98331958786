"""Hostile inputs in the window: a dialog each, the previous image and model still usable,
worker failures shown as messages. The inputs are the ones of `test_bad_inputs.py`."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from bad_inputs import TINY_NET, encoded, png_declaring, write_net_pair
from gui_helpers import (MAP_TIMEOUT, generated_plate, open_window, plate_file,  # noqa: F401
                         settings, window)
from viewer import paths


def still_maps(window, qtbot) -> None:
    """The window's current image and model still produce a map."""
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        window.request_map()
    assert window.fm.image_shape == window.image.pixels.shape[:2]


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
    before = (window.image, window.fm, window.generation)
    assert not window.files.open_image(tmp_path / name)
    assert len(window.errors.errors) == 1
    assert name in window.errors.errors[0] and message in window.errors.errors[0]
    assert (window.image, window.fm, window.generation) == before
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
    model, image = window.model, window.image
    assert not window.files.open_model(proto, weights)
    assert len(window.errors.errors) == 1 and message in window.errors.errors[0]
    assert window.model is model and window.image is image
    still_maps(window, qtbot)


def test_a_map_failure_in_the_worker_comes_back_as_a_message(window, qtbot, tmp_path):
    Image.new("L", (4000, 3000), 200).save(tmp_path / "photo.png")
    window.scale.set_scale(2.0)
    assert window.files.open_image(tmp_path / "photo.png")
    qtbot.waitUntil(lambda: not window.maps.is_busy(), timeout=MAP_TIMEOUT)
    qtbot.waitUntil(lambda: "largest scale that fits" in window.statusBar().currentMessage(),
                    timeout=MAP_TIMEOUT)
    assert window.statusBar().currentMessage().startswith("error: at scale 2 ")
    assert window.errors.errors == []                    # a message, not a dialog per frame
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        window.scale.set_scale(0.1, emit=True)           # the user follows the advice
    assert window.fm.image_shape == (3000, 4000)


def test_an_image_below_the_window_then_a_normal_one_restores_the_scale_range(window, qtbot,
                                                                            tmp_path):
    Image.new("L", (1, 1), 128).save(tmp_path / "dot.png")
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        assert window.files.open_image(tmp_path / "dot.png")
    assert window.fm.probs.shape[1:] == (1, 1)
    Image.fromarray(generated_plate()).save(tmp_path / "plate2.png")
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        assert window.files.open_image(tmp_path / "plate2.png")
    assert window.scale.spin.maximum() == 3.0 and window.scale.value() <= 3.0
    assert window.fm.image_shape == (96, 260)


def test_a_bundled_model_reopened_after_errors_works(window, qtbot, tmp_path):
    proto, weights, _ = _broken_models(tmp_path)["truncated caffemodel"]
    assert not window.files.open_model(proto, weights)
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        assert window.files.open_model(paths.FCN_PROTOTXT, paths.FCN_WEIGHTS)
    assert window.model.prototxt == paths.FCN_PROTOTXT
