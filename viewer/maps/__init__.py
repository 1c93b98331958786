"""Dense maps of images: loading and preprocessing images, the dense pass, fine maps, pictures.

A `DenseClassifier` is a fully convolutional net on an engine; its `FeatureMap` is what the
viewer, the reader and `map` show.
"""
