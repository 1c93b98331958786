"""Net Surgery Viewer: Caffe net surgery made visible on license plates."""
__version__ = "0.1.0"
