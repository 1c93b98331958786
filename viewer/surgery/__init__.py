"""Net -> net transforms and their checks: fully convolutional surgery, filter rarefaction.

Each transform is a pure function of a `CaffeNet` that returns a new one, checked numerically
against the net it came from (`verify`). `from viewer import surgery` gives the surgery's API.
"""
from viewer.surgery.convolutional import (
    Conversion, SurgeryResult, conversion_text, fix_global_pooling, global_poolings,
    inner_products, is_fully_convolutional, make_fully_convolutional, transplant)
from viewer.surgery.verify import (
    TOLERANCE, Verification, prepared_windows, probe_windows, verify_equivalence)

__all__ = ["TOLERANCE", "Conversion", "SurgeryResult", "Verification", "conversion_text",
           "fix_global_pooling", "global_poolings", "inner_products", "is_fully_convolutional",
           "make_fully_convolutional", "prepared_windows", "probe_windows", "transplant",
           "verify_equivalence"]
