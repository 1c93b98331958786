"""How each part of the window follows the state and sends the user's picks back.

One function per widget (or per few widgets that show one thing): it connects the state's
events to what the widget shows, and the widget's signals to the state or the controller. So
every panel shows the one map, scale and pick the state holds; the window only lays the
widgets out and calls these, in the order they must draw a new map.
"""
from __future__ import annotations

from PyQt5 import QtWidgets

from viewer.app import fine, jobs
from viewer.app.controller import Controller
from viewer.app.jobs import JobKind
from viewer.app.layers import filter_name
from viewer.app.scale import scale_text
from viewer.app.state import Tiles, ViewerState
from viewer.gui.blob_panel import BlobPanel
from viewer.gui.controls import ChannelPicker, LayerControls, ScaleControl
from viewer.gui.conv1_panel import Conv1Panel
from viewer.gui.explain_panel import ExplainPanel
from viewer.gui.letter_strip import LetterStrip
from viewer.gui.plate_view import PlateView
from viewer.gui.plates_overlay import PlatesOverlay
from viewer.gui.readout import HoverReadout
from viewer.gui.summary import SummaryLabel
from viewer.gui.surgery_panel import SurgeryPanel
from viewer.maps import render
from viewer.maps.labels import is_plate_model


def legend_html(entries: list, plates: bool = True) -> str:
    """Each character (class, for a model without plate labels) on a swatch of its colour,
    in black or white, whichever reads."""
    if not entries:
        return f"Colours: no {'character' if plates else 'class'} is sure anywhere on this map"
    swatches = []
    for label, (r, g, b) in entries:
        ink = "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#fff"
        swatches.append(f"<span style='background-color:#{r:02x}{g:02x}{b:02x}; color:{ink}'>"
                        f"&nbsp;<b>{label}</b>&nbsp;</span>")
    return "Colours: " + " ".join(swatches)


def summary_text(state: ViewerState) -> str:
    """What is drawn, with the geometry of that very layer (conv1 has its own)."""
    fm, layer = state.fm, state.layer
    g = layer.geometry
    h, w = (layer.values if layer.values is not None else layer.rgba).shape[:2]
    how = ", chosen automatically" if state.auto_shown else ""
    where = ", around the plate" if fm.region is not None else ""
    padded = f" (padded field {g.padded_field[0]} px)" if g.padded_field else ""
    # Why the pass ran on another engine (memory) comes first: an elided line kept only the
    # start, and the note was lost at 1280 px.
    why = f"{fm.engine_note} | " if fm.engine_note else ""
    return (f"{why}{layer.title} | {h}x{w} cells{where}, stride {g.stride[0]}, window "
            f"{g.receptive_field[0]} px of the scaled image{padded} | "
            f"scale {scale_text(fm.scale)}{how} | {fm.forward_ms:.0f} ms on {fm.engine}")


def bind_plate(plate: PlateView, legend: QtWidgets.QLabel, state: ViewerState) -> None:
    """The image, the layer over it (with the best-class legend) and the letter's box."""
    e = state.events

    def new_image(image) -> None:
        plate.clear_map()
        plate.set_plate(image.pixels)
        legend.setVisible(False)

    def options(chosen) -> None:
        plate.set_colormap(chosen.colormap)
        plate.set_opacity(chosen.opacity)

    def draw_layer(*_) -> None:
        layer = state.layer
        if layer is None:
            return
        if layer.rgba is not None:
            plate.show_rgba(layer.rgba, layer.rect)
        else:
            plate.show_values(layer.values, layer.rect, layer.mode, layer.levels)
        options(state.options)
        legend.setVisible(layer.mode == "best")
        if layer.mode == "best":
            legend.setText(legend_html(render.best_class_legend(state.fm),
                                       is_plate_model(state.fm.labels)))

    def highlight(*_) -> None:
        reading = state.result.reading if state.result is not None else None
        plate.set_highlight(None if state.letter is None or reading is None else
                            reading.letters[state.letter].box)

    e.image.connect(new_image)
    e.map.connect(draw_layer)
    e.map.connect(highlight)
    e.layer.connect(draw_layer)
    e.pick.connect(highlight)
    e.options.connect(options)


def bind_letters(strip: LetterStrip, state: ViewerState) -> None:
    """The reading of the map on screen (only for a model with plate labels)."""
    e = state.events

    def new_map(result) -> None:
        if result.reading is not None:
            strip.set_reading(result.reading)
        else:
            strip.show_message(result.note)
        strip.select(state.letter)

    def failed(kind: JobKind, message: str, retrying: bool) -> None:
        if kind in (JobKind.MAP, JobKind.AUTO):
            strip.show_message(f"<span style='color:#c22'>{message}</span>")

    e.model.connect(lambda model: strip.setVisible(is_plate_model(model.dense.labels)))
    e.image.connect(lambda image: strip.reset())
    e.map.connect(new_map)
    e.pick.connect(lambda: strip.select(state.letter))
    e.failed.connect(failed)
    strip.letter_clicked.connect(state.select_letter)


def bind_conv1(panel: Conv1Panel, state: ViewerState, controller: Controller) -> None:
    """The conv1 tiles follow the map on screen (drawn on a worker, as tall as the panel has
    room for); a click overlays that filter."""
    e = state.events

    def new_map(result) -> None:
        kernels = state.conv1_kernels()
        if result.fm.conv1 is None or kernels is None:
            return
        panel.kernel_shape = kernels.shape[2:]
        controller.request_tiles(panel.best_height(result.fm.conv1.shape))

    def drawn(tiles: Tiles) -> None:
        panel.set_filters(tiles.blob, tiles.kernels, tiles.fm.conv1, tiles.pictures)
        panel.select(state.filter)

    e.image.connect(lambda image: panel.clear())
    e.map.connect(new_map)
    e.tiles.connect(drawn)
    e.pick.connect(lambda: panel.select(state.filter))
    panel.filter_clicked.connect(state.select_filter)
    panel.height_wanted.connect(controller.request_tiles)


def bind_blobs(panel: BlobPanel, state: ViewerState, controller: Controller) -> None:
    """The picked blob of the map on screen ("computing..." until a pass has made it)."""
    e = state.events

    def show(*_) -> None:
        panel.show_blob(state.blob, *state.blob_values())

    e.model.connect(lambda model: panel.set_blobs(model.dense.engine.blob_names, state.blob))
    e.image.connect(lambda image: panel.show_blob(state.blob, None))
    e.map.connect(show)
    e.blob.connect(show)
    panel.blob_changed.connect(controller.pick_blob)


def bind_readout(readout: HoverReadout, plate: PlateView, state: ViewerState) -> None:
    """The hovered cell: its probabilities, and its window over the plate."""
    def show(*_) -> None:
        fm, cell = state.fm, state.cell
        if cell is None:
            readout.clear()
            plate.set_window(None)
        else:
            readout.show_cell(fm, *cell)
            plate.set_window(fm.geometry.cell_window(*cell))

    state.events.cell.connect(show)
    state.events.image.connect(show)
    state.events.map.connect(show)
    plate.hovered.connect(state.hover_at)
    plate.left.connect(state.leave)


def bind_summary(summary: SummaryLabel, state: ViewerState) -> None:
    def show(*_) -> None:
        if state.fm is not None:
            summary.set_summary(summary_text(state))

    state.events.map.connect(show)
    state.events.layer.connect(show)


def bind_surgery(panel: SurgeryPanel, state: ViewerState, controller: Controller) -> None:
    """The surgery's layers, then how the fine map is made; the check and its timing."""
    e = state.events

    def new_model(model) -> None:
        panel.set_model(model)
        panel.set_fine(fine.surgery_rows(model.dense))

    e.model.connect(new_model)
    e.check_started.connect(panel.set_measuring)
    e.check_done.connect(panel.set_check)
    e.map.connect(lambda result: panel.set_scale(result.fm.scale))
    e.image.connect(lambda image: panel.clear_timing())
    e.check_stopped.connect(lambda message: panel.set_cancelled() if message is None else
                            panel.set_failed(message))
    panel.check_requested.connect(controller.request_check)


def bind_scale(control: ScaleControl, state: ViewerState, controller: Controller) -> None:
    """The scale of the map and its range; "Auto" only where a plate reader chooses."""
    e = state.events
    e.scale.connect(control.set_scale)
    e.scale_range.connect(control.set_range)
    e.model.connect(lambda model: control.auto.setEnabled(
        jobs.plate_reader(model.dense.labels) is not None))
    control.scale_changed.connect(controller.choose_scale)
    control.auto_requested.connect(controller.request_auto_scale)
    control.slider.sliderPressed.connect(lambda: controller.hold_scale(True))
    control.slider.sliderReleased.connect(lambda: controller.hold_scale(False))


def bind_channels(picker: ChannelPicker, state: ViewerState) -> None:
    """The class channel shown, or the conv1 filter overlaid instead."""
    def show(*_) -> None:
        if state.filter is None:
            picker.set_channel(state.channel, emit=False)
        else:
            picker.show_filter(filter_name(state.model.dense, state.filter))

    state.events.model.connect(lambda model: picker.set_labels(model.dense.labels))
    state.events.pick.connect(show)
    picker.channel_changed.connect(state.set_channel)


def bind_layer_controls(controls: LayerControls, state: ViewerState) -> None:
    state.events.options.connect(lambda chosen: controls.set_values(
        chosen.opacity, chosen.colormap, chosen.raw_scores))
    controls.opacity_changed.connect(state.set_opacity)
    controls.colormap_changed.connect(state.set_colormap)
    controls.raw_changed.connect(state.set_raw)


def bind_plates(overlay: PlatesOverlay, state: ViewerState, controller: Controller) -> None:
    """The plates found in the photo; a click reads one, a Shift-drag searches a region."""
    def chosen(index: int, zoom: bool) -> None:
        overlay.choose(index)
        if zoom:
            overlay.zoom_to(index)

    state.events.image.connect(lambda image: overlay.clear())
    state.events.plates.connect(overlay.set_plates)
    state.events.region.connect(overlay.show_region)
    state.events.plate_chosen.connect(chosen)
    overlay.plate_clicked.connect(controller.choose_plate)
    overlay.region_drawn.connect(controller.request_plates)


def bind_explain(panel: ExplainPanel, strip: LetterStrip, state: ViewerState,
                 controller: Controller, shown=lambda: None) -> None:
    """ "Why <class> here": a letter card asks for its cell, the answer (computed on a worker,
    again for each new map) is shown and `shown()` brings the panel forward; a runner-up picked
    in the panel explains the class against it."""
    def explained(explanation) -> None:
        panel.show_explanation(explanation)
        if explanation is not None:
            shown()

    state.events.explained.connect(explained)
    strip.letter_clicked.connect(controller.explain_letter)
    panel.versus_changed.connect(lambda label: controller.explain_versus(label or None))
