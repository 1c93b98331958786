"""Net -> net transforms and their checks: fully convolutional surgery, filter rarefaction.

Each transform is a pure function of a `CaffeNet` that returns a new one, checked numerically
against the net it came from. `from viewer import surgery` gives the surgery's public API.
"""
from viewer.surgery.convolutional import (
    TOLERANCE, Conversion, SurgeryResult, Verification, conversion_text, fix_global_pooling,
    global_poolings, inner_products, is_fully_convolutional, make_fully_convolutional,
    prepared_windows, sample_windows, transplant, verify_equivalence)

__all__ = ["TOLERANCE", "Conversion", "SurgeryResult", "Verification", "conversion_text",
           "fix_global_pooling", "global_poolings", "inner_products", "is_fully_convolutional",
           "make_fully_convolutional", "prepared_windows", "sample_windows", "transplant",
           "verify_equivalence"]
