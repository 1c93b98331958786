"""The Fine (stride 1) toggle: the coarse map first, the fine map after it, placed by geometry."""
from __future__ import annotations

import numpy as np

from gui_helpers import (MAP_TIMEOUT, item_rect, plate_file, rect_tuple, settings,  # noqa: F401
                         window)


def test_the_fine_toggle_replaces_the_coarse_grid_by_one_cell_per_pixel(window, qtbot):
    coarse = window.state.fm
    assert coarse.geometry.stride == (4, 4)
    table = window.surgery.table
    rows = [[table.item(r, c).text() for c in range(5)] for r in range(table.rowCount())]
    assert ["pool2 (Pooling)", "stride 2 dilation 1 pad 0", "->", "pool2 (fine)",
            "stride 1 dilation 2 pad 0"] in rows
    assert ["fine map (stride 1)", "", "by", "rarefaction", ""] in rows
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        window.fine_action.trigger()            # View > Fine (stride 1), Ctrl+F
    fm = window.state.fm
    assert fm.scale == coarse.scale and fm.geometry.stride == (1, 1)
    drawn = window.plate.classes.image
    assert drawn.shape[:2] == fm.probs.shape[1:]
    assert drawn.shape[0] > 3 * coarse.probs.shape[1]
    assert np.allclose(item_rect(window.plate.classes), fm.geometry.heatmap_rect(*drawn.shape[:2]))
    sampled = fm.probs[:, ::4, ::4]
    np.testing.assert_allclose(sampled, coarse.probs[:, :sampled.shape[1], :sampled.shape[2]],
                               atol=1e-4)
    x, y, w, h = fm.geometry.cell_window(5, 9)
    window.state.hover_at(x + w / 2, y + h / 2)
    assert np.allclose(rect_tuple(window.plate.window_box.rect()), (x, y, w, h))
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        window.fine_action.trigger()            # off: the coarse map again, at once
    assert window.state.fm is coarse


def test_no_fine_pass_while_the_scale_is_dragged(window, qtbot):
    window.controller.set_fine(True)
    qtbot.waitUntil(lambda: window.state.fm.geometry.stride == (1, 1), timeout=MAP_TIMEOUT)
    window.scale.slider.setSliderDown(True)
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        window.scale.set_scale(0.9, emit=True)
    assert window.state.fm.geometry.stride == (4, 4) and "fine" not in window.maps.busy_kinds()
    with qtbot.waitSignal(window.map_shown, timeout=MAP_TIMEOUT):
        window.scale.slider.setSliderDown(False)  # the release starts the fine pass
    assert window.state.fm.geometry.stride == (1, 1) and window.state.fm.scale == 0.9


def test_the_fine_pass_is_cancelled_like_any_pass(window, qtbot):
    coarse = window.state.fm
    window.controller.set_fine(True)
    assert "computing the fine map" in window.busy_label.text()
    assert window.cancel_work(background=False) == ["fine"]
    qtbot.waitUntil(lambda: not window.maps.is_running(), timeout=MAP_TIMEOUT)
    qtbot.wait(50)      # a late result would arrive through the event loop
    assert window.state.fm is coarse and "cancelled: computing the fine map" in \
        window.statusBar().currentMessage()
