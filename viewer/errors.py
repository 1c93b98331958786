"""The exceptions that carry a message a user can act on.

Everything the CLI prints as one `error: ...` line and the GUI shows in a dialog derives from
`ViewerError`. Anything else escaping is a bug and keeps its traceback.
"""


class ViewerError(ValueError):
    """A problem with the user's input (a file, a model, an option), said in one sentence."""


class ModelError(ViewerError):
    """A prototxt or caffemodel that cannot be read, or that disagrees with itself."""


class SurgeryError(ViewerError):
    """A net that cannot be made fully convolutional, or a target prototxt that would be wrong."""


class ImageError(ViewerError):
    """An image that cannot be read or is unusable at the chosen scale."""


class EngineError(ViewerError):
    """An inference engine that is not installed or cannot run the net."""


class BlobTooLarge(ModelError):
    """A blob whose declared or inferred size exceeds `model_io.MAX_BLOB_ELEMENTS` (refused, never allocated)."""


class RarefactionError(SurgeryError):
    """A layer whose stride cannot be removed exactly (fine maps then use shift-and-stitch)."""


class PreprocessError(ViewerError):
    """A preprocessing setting that cannot apply to the net; the message names the flag."""


class DatasetError(ViewerError):
    """A dataset folder, record or font setup that cannot be used, said in one sentence."""


class TrainingError(ViewerError):
    """A training run that cannot start or an export that would be wrong, said in one sentence."""


class ClusterError(ViewerError):
    """A Dask scheduler that cannot be reached or a cluster that cannot run the batch."""
