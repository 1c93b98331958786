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
