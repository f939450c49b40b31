"""What loading a data set raises or warns; TensorFlow-free, so that anything may import it.

`harness.data.loading` re-exports `DataError` (its historic home); `harness.errors.reported`
turns one into a plain failure of the experiment that names the spec's line, and a
`DataUnavailableError` into a skip with its message as the reason.
"""

from __future__ import annotations


class DataError(RuntimeError):
    """The data set could not be loaded as the spec declares it."""


class DataUnavailableError(DataError):
    """The data set's files are not here and cannot be downloaded (offline): the experiment is skipped.

    The message names the files, the folder to put them in and how to obtain them.
    """


class SkippedFilesWarning(UserWarning):
    """Files of an image folder that do not decode were left out (`image_folder(bad_files="skip")`)."""
