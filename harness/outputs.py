"""A session's outputs, written together: prepared completely, then published in one short commit.

The baseline file, the metrics JSON, the report folder and the exports are each first written
under a temporary name beside their destination (a file next to it, a staging folder inside the
destination folder). Nothing a user reads changes until `Outputs.commit`, which publishes them
all by renames, in a few milliseconds, with Ctrl-C held back until the last rename is done. So
an interrupted session leaves every output as it was, a completed one leaves every output new,
and no reader ever sees a half-written file.

Temporaries and staging folders carry their writer's pid in their names; a session that was
killed (kill -9) leaves them behind, and the next session that writes there removes them
(`StagingFolder` on creation, `Outputs.text` with `harness.paths.remove_stale_temporaries`).
No TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from harness import paths

STAGING_MARK = ".harness-staging-"
PARTIAL = ".partial"  # a staged entry still being written: never published


class StagingFolder:
    """A folder inside `root` whose entries are moved into `root` at commit, each replacing its namesake."""

    def __init__(self, root: str | os.PathLike[str], *, path: Path | None = None) -> None:
        """`path`: a staging folder another process of the session made (a pytest-xdist worker
        stages into its controller's, which publishes or removes it)."""
        self.root = Path(root)
        self._path = path

    @property
    def path(self) -> Path:
        """The staging folder, created on first use (after removing stale ones of dead sessions)."""
        if self._path is None:
            self.root.mkdir(parents=True, exist_ok=True)
            remove_stale_staging(self.root)
            self._path = Path(tempfile.mkdtemp(prefix=f"{STAGING_MARK}{os.getpid()}-", dir=self.root))
            paths.publish_directory_mode(self._path)
        return self._path

    @property
    def used(self) -> bool:
        return self._path is not None

    def complete(self) -> list[Path]:
        """The staged entries that are whole: not still being written (`PARTIAL`), not an old one set aside."""
        if self._path is None:
            return []
        return [p for p in sorted(self._path.iterdir()) if not p.name.endswith(PARTIAL) and not p.name.startswith(".")]

    def publish(self) -> list[Path]:
        """Moves every complete entry into `root` (folders replace folders whole); returns the targets."""
        if self._path is None:
            return []
        published = []
        for staged in self.complete():
            target = self.root / staged.name
            if staged.is_dir() and target.is_dir():  # the old folder steps aside whole, then the new one takes its name
                target.rename(self._path / f".old-{staged.name}")
            os.replace(staged, target)
            published.append(target)
        self.close()
        return published

    def close(self) -> None:
        """Removes the staging folder and whatever it still holds."""
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)
            self._path = None


def remove_stale_staging(root: Path) -> list[Path]:
    """Removes the staging folders in `root` whose session no longer runs; returns them."""
    removed = []
    for folder in root.glob(f"{STAGING_MARK}*"):
        pid = folder.name[len(STAGING_MARK) :].split("-", 1)[0]
        if pid.isdigit() and not paths.pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


class Outputs:
    """What a session writes at its end, staged; `commit` publishes it all, `discard` none of it."""

    def __init__(self) -> None:
        self._files: list[tuple[Path, Path]] = []  # (temporary, destination)
        self._folders: list[StagingFolder] = []

    def text(self, path: str | os.PathLike[str], text: str) -> None:
        """Stages `text` (UTF-8) for `path`."""
        target = Path(path)
        paths.remove_stale_temporaries(target.parent)  # of a session killed while it wrote here
        temporary = paths.temporary_beside(target)
        self._files.append((temporary, target))
        temporary.write_text(text, encoding="utf-8")

    def folder(self, staging: StagingFolder) -> StagingFolder:
        """Publishes `staging`'s entries into its root at commit."""
        self._folders.append(staging)
        return staging

    def commit(self) -> bool:
        """Publishes everything staged, by renames; returns whether Ctrl-C came meanwhile (held back)."""
        with deferred_interrupt() as interrupted:
            for temporary, target in self._files:
                os.replace(temporary, target)
            self._files.clear()
            for staging in self._folders:
                staging.publish()
        return bool(interrupted)

    def discard(self) -> None:
        """Removes everything staged; the destinations stay as they were."""
        for temporary, _ in self._files:
            with contextlib.suppress(OSError):
                temporary.unlink()
        self._files.clear()
        for staging in self._folders:
            staging.close()


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[list[int]]:
    """Holds Ctrl-C (SIGINT) back inside the block; yields a list that records each one held.

    Outside the main thread, where Python delivers no signal handlers, it holds nothing.
    """
    held: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return

    def hold(signum: int, frame: FrameType | None) -> None:
        held.append(signum)

    previous: Callable[[int, FrameType | None], object] | int | None = signal.signal(signal.SIGINT, hold)
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, previous)
