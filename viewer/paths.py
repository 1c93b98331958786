"""Where the bundled models and sample images live, found from the package location."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
RESOURCES = ROOT / "resources"

CLASSIFIER_PROTOTXT = MODELS / "lenet_plates.prototxt"
CLASSIFIER_WEIGHTS = MODELS / "lenet_plates.caffemodel"
FCN_PROTOTXT = MODELS / "lenet_plates_fullconv.prototxt"
FCN_WEIGHTS = MODELS / "lenet_plates_fullconv.caffemodel"
SAMPLE_PLATE = RESOURCES / "sample_plate.png"
