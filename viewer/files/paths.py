"""Where the bundled models and sample images live: package data, found with importlib.resources.

`viewer/models` and `viewer/resources` are links to the repository's top-level `models/` and
`resources/` (one copy of each file); a wheel holds the files themselves (setup.cfg's
package_data), so an installed viewer finds them the same way.
"""
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
