"""Opening a model off the GUI thread: read the files, ask about surgery, build the engine.

Reading a caffemodel, the surgery and creating an engine (onnxruntime ~0.2 s, Caffe ~0.5 s)
used to freeze the window. They run on the map worker now, in two steps so that the question
"perform the surgery?" is asked on the GUI thread between them. The state keeps its current
model until `loaded` hands over the new one; a failure comes back through `failed`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PyQt5 import QtCore

from viewer.app import jobs, session
from viewer.app.jobs import JobKind
from viewer.app.session import LoadedModel
from viewer.caffe.model_io import CaffeNet
from viewer.gui.worker import LatestWorker

KIND = JobKind.MODEL


def surgery_question(prototxt: Path, net: CaffeNet) -> str:
    """What the surgery will change in this net (as the Surgery tab lists it afterwards)."""
    return (f"{prototxt.name} is a classifier. The net surgery will "
            f"{session.surgery_changes(net)}, so it maps whole images, and check that the "
            "scores stay the same. Perform it?")


class ModelLoader(QtCore.QObject):
    """Loads models on `worker`; only the newest request counts, older answers are dropped.

    `loaded(model, tag)`, `failed(tag, message)` and `declined(tag)` (the user did not want the
    surgery) end each request.
    """

    loaded = QtCore.pyqtSignal(object, object)
    failed = QtCore.pyqtSignal(object, str)
    declined = QtCore.pyqtSignal(object)

    def __init__(self, worker: LatestWorker, confirm: Callable[[str], bool]) -> None:
        super().__init__()
        self.worker, self.confirm = worker, confirm
        self.latest = 0
        worker.done.connect(self._done)
        worker.failed.connect(self._failed)

    def load(self, prototxt: Path, weights: Path | None, engine: str) -> jobs.ModelTag:
        """Read `prototxt` + `weights`, then (after the question, if it is a classifier) build.
        A plate search on the worker gives way (its plates would be the old model's)."""
        self.worker.cancel((JobKind.PLATES,))
        tag = self._tag(prototxt, weights, engine, remember=True)
        self.worker.submit(KIND, lambda: jobs.read_model(prototxt, weights), tag)
        return tag

    def rebuild(self, model: LoadedModel, engine: str) -> jobs.ModelTag:
        """The same net and preprocessing on another engine (no files read, no question)."""
        self.worker.cancel((JobKind.PLATES,))
        tag = self._tag(model.prototxt, model.weights, engine, remember=False)
        net, settings = model.net, model.dense.settings
        self.worker.submit(KIND, lambda: jobs.build_model(net, tag, settings), tag)
        return tag

    def _tag(self, prototxt: Path, weights: Path | None, engine: str,
             remember: bool) -> jobs.ModelTag:
        self.latest += 1
        return jobs.ModelTag(self.latest, Path(prototxt), Path(weights) if weights else None,
                             engine, remember)

    def _current(self, kind: str, tag: Any) -> bool:
        return kind == KIND and tag.number == self.latest

    def _done(self, kind: str, tag: Any, result: Any) -> None:
        if not self._current(kind, tag):
            return
        if isinstance(result, jobs.NetRead):
            if result.needs_surgery and not self.confirm(surgery_question(tag.prototxt,
                                                                          result.net)):
                self.declined.emit(tag)
                return
            net = result.net
            self.worker.submit(KIND, lambda: jobs.build_model(net, tag), tag)
        else:
            self.loaded.emit(result, tag)

    def _failed(self, kind: str, tag: Any, message: str) -> None:
        if self._current(kind, tag):
            self.failed.emit(tag, message)
