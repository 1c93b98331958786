"""The one exception of the dataset package: a problem with a dataset a user can act on."""
from __future__ import annotations

from viewer.errors import ViewerError


class DatasetError(ViewerError):
    """A dataset folder, record or font setup that cannot be used, said in one sentence.

    A ValueError (through ViewerError), so the CLI prints it as one `error: ...` line.
    """
