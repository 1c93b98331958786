"""A surgered net out in other formats: ONNX."""
