"""One process computes a shared file while the others wait for it: file locks (the `filelock` package).

The workers of a pytest-xdist session, and pytest processes run side by side, share the harness
cache (features and activations, converted weights) and prepared data sets. When two need the
same entry, the first to take its lock computes it; the other waits, then finds it written and
reads it. Entries are written atomically anyway (`harness.paths.atomic_path`): the lock is what
keeps the same entry from being computed twice at once. The locks are advisory locks the
operating system releases when their holder dies (`fcntl.flock` on Unix), so a killed run
leaves nothing that blocks the next one. Their small files live in the cache's `locks` folder
and stay there, as `filelock` leaves them (removing a lock file that another process holds
would break the exclusion).

Like the cache, a lock is never a point of failure: where one cannot be taken (an unwritable
folder), the caller goes on without it, and at worst computes an entry another process is
computing too. No TensorFlow.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock

from harness.paths import cache_dir

LOCKS_DIR = "locks"


@contextlib.contextmanager
def held(name: str | os.PathLike[str], *, folder: Path | None = None) -> Iterator[bool]:
    """Holds the lock of `name` (a file's path, or what is prepared: "tfds-<data dir>") while the
    block runs, waiting for another holder to finish first; yields whether the lock was taken.

    The lock file is `<folder>/<name's last part>-<digest of name>.lock`, by default in the cache's
    `locks` folder: never beside the files it guards, which stay as their readers expect them.
    """
    text = os.fspath(name)
    safe = re.sub(r"[^\w.-]", "_", Path(text).name or text)[:80]
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    lock_path = (folder if folder is not None else cache_dir() / LOCKS_DIR) / f"{safe}-{digest}.lock"
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(lock_path)
        lock.acquire()
    except OSError:  # an unwritable folder: go on unlocked, as the cache goes on uncached
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
