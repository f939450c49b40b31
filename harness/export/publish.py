"""The `--export-dir` folder: exports are staged during the session and published at its end.

Each experiment's export is written into the export folder's staging folder
(`harness.outputs.StagingFolder`: same file system, so publishing is a rename), first as
`<name>.partial`, renamed to `<name>` once every file is written. The session's end publishes
every complete staged folder with the session's other outputs (`harness.outputs.Outputs`): each
replaces `<export-dir>/<name>` whole. An interrupted session, or an experiment whose export
failed, leaves the export folder as it was; at every moment `<export-dir>/<name>` is absent or a
whole export (the old one or the new one), never half-written. No TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from harness.outputs import PARTIAL, StagingFolder


def folder_name(experiment: str) -> str:
    """`experiment`'s folder name: its name, with anything but word characters and `.-[]=,+` as `_`."""
    return re.sub(r"[^\w.\-\[\]=,+]", "_", experiment)


class ExportDir:
    """The export folder of one session (`--export-dir`)."""

    def __init__(self, root: str | os.PathLike[str], *, staging: Path | None = None) -> None:
        self.root = Path(root)
        self.staging = StagingFolder(self.root, path=staging)

    @contextlib.contextmanager
    def stage(self, experiment: str) -> Iterator[Path]:
        """Yields the empty folder to write `experiment`'s export into; kept only if the block
        completes, removed if it raises (or is interrupted)."""
        name = folder_name(experiment)
        partial = self.staging.path / f"{name}{PARTIAL}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        try:
            yield partial
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        shutil.rmtree(self.staging.path / name, ignore_errors=True)  # an earlier export of it this session
        partial.rename(self.staging.path / name)

    def discard(self, experiment: str) -> None:
        """Drops `experiment`'s staged export (it failed and `--export-all` is off)."""
        if self.staging.used:
            shutil.rmtree(self.staging.path / folder_name(experiment), ignore_errors=True)

    def staged(self) -> dict[str, Path]:
        """The complete staged exports: folder name -> where publishing puts it."""
        return {entry.name: self.root / entry.name for entry in self.staging.complete()}
