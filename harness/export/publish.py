"""The `--export-dir` folder: exports are staged during the session and published at its end.

Each experiment's export is written into a staging folder inside the export folder (same file
system, so publishing is a rename), first as `<name>.partial`, renamed to `<name>` once every
file is written. At the end of a session that was not interrupted, every complete staged
folder replaces `<export-dir>/<name>`; an interrupted session, or an experiment whose export
failed, leaves the export folder as it was. At every moment `<export-dir>/<name>` is absent, or
a whole export (the old one or the new one), never half-written.

Staging folders are named `.harness-export-<pid>-<random>`: one whose process is gone (killed
before it could clean up) is removed by the next session that uses the export folder.
No TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from harness.paths import publish_directory_mode

STAGING_PREFIX = ".harness-export-"
_PARTIAL = ".partial"


def folder_name(experiment: str) -> str:
    """`experiment`'s folder name: its name, with anything but word characters and `.-[]=,+` as `_`."""
    return re.sub(r"[^\w.\-\[\]=,+]", "_", experiment)


class ExportDir:
    """The export folder of one session (`--export-dir`)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._staging: Path | None = None

    @property
    def staging(self) -> Path:
        if self._staging is None:
            self.root.mkdir(parents=True, exist_ok=True)
            remove_stale(self.root)
            self._staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=self.root))
        return self._staging

    @contextlib.contextmanager
    def stage(self, experiment: str):
        """Yields the empty folder to write `experiment`'s export into; kept only if the block
        completes, removed if it raises (or is interrupted)."""
        name = folder_name(experiment)
        partial = self.staging / f"{name}{_PARTIAL}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        try:
            yield partial
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        shutil.rmtree(self.staging / name, ignore_errors=True)  # an earlier export of it this session
        partial.rename(self.staging / name)

    def discard(self, experiment: str) -> None:
        """Drops `experiment`'s staged export (it failed and `--export-all` is off)."""
        if self._staging is not None:
            shutil.rmtree(self._staging / folder_name(experiment), ignore_errors=True)

    def publish(self) -> list[Path]:
        """Moves every complete staged export to `<root>/<name>`; returns the folders published."""
        if self._staging is None:
            return []
        published = []
        for staged in sorted(self._staging.iterdir()):
            if staged.name.endswith(_PARTIAL):
                continue
            publish_directory_mode(staged)
            target = self.root / staged.name
            if target.exists():  # the old export steps aside whole, then the new one takes its name
                staged_old = self._staging / f"{staged.name}.old"
                target.rename(staged_old)
            staged.rename(target)
            published.append(target)
        self.close()
        return published

    def close(self) -> None:
        """Removes the staging folder and whatever it still holds."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None


def remove_stale(root: Path) -> list[Path]:
    """Removes the staging folders in `root` whose process no longer runs; returns them."""
    removed = []
    for folder in root.glob(f"{STAGING_PREFIX}*"):
        pid = folder.name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
