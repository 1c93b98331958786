"""Where the bundled models and sample images live: package data, found with importlib.resources.

`viewer/models` and `viewer/resources` are links to the repository's top-level `models/` and
`resources/` (one copy of each file); a wheel holds the files themselves (setup.cfg's
package_data), so an installed viewer finds them the same way.

Two plate nets are bundled: the tutorial's LeNet, which the viewer opens, and BNNet, a stronger
net `read` uses by default when its files are there (`read --model lenet` picks the tutorial
one). Both have the same 37 labels and a fully convolutional twin made by our surgery.
"""
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

# A folder on disk, as the package is never run from a zip: callers use Path operations.
PACKAGE = Path(str(files("viewer")))
MODELS = PACKAGE / "models"
RESOURCES = PACKAGE / "resources"

CLASSIFIER_PROTOTXT = MODELS / "lenet_plates.prototxt"
CLASSIFIER_WEIGHTS = MODELS / "lenet_plates.caffemodel"
FCN_PROTOTXT = MODELS / "lenet_plates_fullconv.prototxt"
FCN_WEIGHTS = MODELS / "lenet_plates_fullconv.caffemodel"
LABELS = MODELS / "labels.txt"
SAMPLE_PLATE = RESOURCES / "sample_plate.png"


@dataclass(frozen=True)
class PlateModel:
    """A bundled plate net: the classifier and its surgered twin, by the name users give it."""

    name: str
    title: str
    stem: str

    @property
    def prototxt(self) -> Path:
        return MODELS / f"{self.stem}.prototxt"

    @property
    def weights(self) -> Path:
        return MODELS / f"{self.stem}.caffemodel"

    @property
    def fcn_prototxt(self) -> Path:
        return MODELS / f"{self.stem}_fullconv.prototxt"

    @property
    def fcn_weights(self) -> Path:
        return MODELS / f"{self.stem}_fullconv.caffemodel"

    def bundled(self) -> bool:
        """Whether its four files are there (a checkout may lack a model not yet trained)."""
        return all(p.is_file() for p in (self.prototxt, self.weights, self.fcn_prototxt,
                                         self.fcn_weights))


# Strongest first: `read` takes the first one that is bundled (models/README.md measures them).
PLATE_MODELS = {
    "bnnet": PlateModel("bnnet", "BNNet (BatchNorm, three convolutions)", "bnnet_plates"),
    "lenet": PlateModel("lenet", "LeNet (the tutorial's)", "lenet_plates"),
}
VIEWER_MODEL = "lenet"     # the viewer opens the model the tutorial explains


def strongest_plate_model() -> PlateModel:
    """The model `read` uses unless told otherwise: the strongest one bundled."""
    return next((m for m in PLATE_MODELS.values() if m.bundled()), PLATE_MODELS["lenet"])


def plate_model_of(prototxt: Path) -> PlateModel | None:
    """The bundled plate model whose classifier or surgered twin `prototxt` is, if any."""
    try:
        where = Path(prototxt).resolve()
    except OSError:
        return None
    return next((m for m in PLATE_MODELS.values()
                 if where in (m.prototxt.resolve(), m.fcn_prototxt.resolve())), None)
