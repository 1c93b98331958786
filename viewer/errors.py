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


def shown(text: str) -> str:
    """Text safe to print on a terminal: control characters (ESC, BEL, newline) and
    undecodable bytes of a file name are written as escapes such as \\x1b, so a name or a
    label cannot forge a second `error:` line or drive the terminal."""
    def escape(c: str) -> str:
        if c.isprintable():
            return c
        code = ord(c) - 0xDC00 if 0xDC80 <= ord(c) <= 0xDCFF else ord(c)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return "".join(escape(c) for c in text)


# The longest error line printed: a 300-digit number or a whole file's text is cut in its
# middle, where its end (what to do) stays readable.
MAX_LINE = 400


def one_line(message: str, limit: int = MAX_LINE) -> str:
    """`message` as one printable line of at most about `limit` characters."""
    text = shown(message)
    if len(text) <= limit:
        return text
    keep = (limit - 5) // 2
    return f"{text[:keep]}[...]{text[-keep:]}"


def too_long(path: object, named: bool = True) -> str:
    """The message for a path the system refuses as too long (ENAMETOOLONG), the path cut
    in its middle: a name may have 255 bytes, a whole path 4095 on Linux."""
    import os

    text = os.fsencode(os.fspath(path))
    longest = max(len(part) for part in text.split(b"/"))
    what = f"a name in it has {longest} bytes, more than 255" if longest > 255 else \
        f"it has {len(text)} bytes, more than the system takes"
    why = f"the path is too long ({what})"
    return f"{one_line(os.fsdecode(text), 120)}: {why}" if named else why


class ExplainError(ViewerError):
    """An explanation that cannot be made: a cell outside the map, an unknown class, method
    or layer, or a layer the backward pass does not cover yet (named)."""


class ClusterError(ViewerError):
    """A Dask scheduler that cannot be reached or a cluster that cannot run the batch."""
