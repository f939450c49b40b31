"""Where the harness keeps what it computes: converted weights, prepared data, feature caches.

Everything lives under one root so that users can inspect, move (`--cache-dir`) or delete it.
Every file is written through `atomic_path` (temporary then rename). The cache is an
optimisation: its helpers here (`write_with_digest`, `digest_problem`, `lacks_room`,
`remove_stale_temporaries`) never raise `OSError`; a failure is a `CacheWarning` and the
caller computes in memory instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

ENV_CACHE_DIR = "HARNESS_CACHE_DIR"
TEMPORARY_MARK = ".harness-tmp-"
# `.<name>.harness-tmp-<pid>-<random><suffix>`: `atomic_path`'s temporaries, named after their writer.
_TEMPORARY = re.compile(r"^\..*\.harness-tmp-(?P<pid>\d+)-[a-z0-9_]+")
RESERVE_BYTES = 1024**2  # free space a cache write leaves to the file system
DIGEST_SUFFIX = ".sha256"
NO_ROOM = "not enough free space for the write"
NOT_CACHED = "not cached, kept in memory for this run"


class CacheWarning(UserWarning):
    """A harness cache file could not be used (read, verified or written); the run computed in memory."""


_warned: set[tuple[str, str]] = set()


def warn_cache(path: str | os.PathLike[str], reason: str, consequence: str, detail: str = "") -> None:
    """Emits one `CacheWarning` per `path` and `reason` in this process (later ones are dropped).

    The message names `path`, `reason` (what was expected and what was found), `detail` (which
    may vary from call to call: byte counts) and `consequence` (what the harness does instead).
    """
    if (str(path), reason) in _warned:
        return
    _warned.add((str(path), reason))
    warnings.warn(
        f"harness cache {path}: {reason}{f' ({detail})' if detail else ''}; {consequence}; the results are the same",
        CacheWarning,
        stacklevel=3,
    )


def describe(error: OSError) -> str:
    """`error` in a few stable words: without file names or times (a temporary's random name would
    defeat `warn_cache`'s dedup). h5py's long messages keep their first clause and their errno."""
    if error.strerror:
        return f"{type(error).__name__} ({error.strerror})"
    message = str(error)
    summary = message.splitlines()[0].split(" (", 1)[0] if message else "no message"
    code = re.search(r"errno = (\d+)", message)
    return f"{type(error).__name__} ({summary}{f': {os.strerror(int(code[1]))}' if code else ''})"


def cache_dir() -> Path:
    """Returns the harness cache root.

    `$HARNESS_CACHE_DIR` when set (the plugin sets it from `--cache-dir`), else
    `~/.cache/keras-transfer-harness`. The directory is not created here.
    """
    configured = os.environ.get(ENV_CACHE_DIR)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "keras-transfer-harness"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temporary path beside `path`; renames it onto `path` only on success.

    A crash or Ctrl-C inside the block leaves `path` exactly as it was (absent or old)
    and removes the temporary file, so no reader ever sees a half-written file. A kill -9
    leaves the temporary, named `.<name>.harness-tmp-<pid>-<random><suffix>` after its
    writer, for `remove_stale_temporaries`. The name keeps the suffix of `path` (Keras checks
    `.weights.h5`).
    """
    target = Path(path)
    tmp = temporary_beside(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def temporary_beside(path: str | os.PathLike[str]) -> Path:
    """Creates an empty temporary file beside `path` (and `path`'s folder, if missing); returns it.

    Its name, `.<name>.harness-tmp-<pid>-<random><suffix>`, names this process as its writer
    and keeps the suffix of `path`; its mode is the one a newly created file gets. The caller
    renames it onto `path` (`os.replace`) or removes it; once this process is gone,
    `remove_stale_temporaries` removes it. Raises OSError when the folder cannot be written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name.split('.')[0]}{TEMPORARY_MARK}{os.getpid()}-"
    fd, name = tempfile.mkstemp(prefix=prefix, suffix="".join(target.suffixes), dir=target.parent)
    os.close(fd)
    try:
        os.chmod(name, 0o666 & ~_umask())  # mkstemp files are private (0600)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return Path(name)


def temporary_pid(path: str | os.PathLike[str]) -> int | None:
    """The pid of the process that wrote the `atomic_path` temporary `path`; None for any other name."""
    match = _TEMPORARY.match(Path(path).name)
    return int(match["pid"]) if match else None


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (a process of another user counts as alive; so does any doubt)."""
    if pid == os.getpid():
        return True
    if os.name == "nt" or pid <= 0:  # Windows' os.kill terminates; pid 0 or less names a group
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, another user's
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> int:
    """Removes the `atomic_path` temporaries directly in `folder` whose writer is no longer alive.

    Returns how many files it removed. Never raises: a missing or unreadable folder, or a file
    that cannot be removed, removes nothing. Temporaries of live processes are kept.
    """
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    removed = 0
    for entry in entries:
        pid = temporary_pid(entry.name)
        if pid is None or pid_alive(pid):
            continue
        try:
            os.unlink(entry.path)
        except OSError:  # gone already (another process swept it), a folder, or not ours to remove
            continue
        removed += 1
    return removed


def remove_stale_cache_temporaries(root: Path | None = None) -> int:
    """`remove_stale_temporaries` on the cache root (default `cache_dir()`) and each folder directly in it."""
    root = cache_dir() if root is None else root
    try:
        folders = [root, *(p for p in root.iterdir() if p.is_dir())]
    except OSError:
        return 0
    return sum(remove_stale_temporaries(folder) for folder in folders)


def free_bytes(folder: Path) -> int | None:
    """The free space of `folder`'s file system; None when it cannot be known (`shutil.disk_usage` fails)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def lacks_room(folder: Path, nbytes: int) -> str | None:
    """None when `folder` has room for `nbytes` plus `RESERVE_BYTES` (or its free space is unknown:
    the write itself is guarded); else the byte counts, for a warning's detail."""
    free = free_bytes(folder)
    if free is None or free >= nbytes + RESERVE_BYTES:
        return None
    return f"{nbytes + RESERVE_BYTES} bytes needed with the reserve, {free} free"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of the bytes of `path` (raises OSError when it cannot be read)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def digest_path(path: str | os.PathLike[str]) -> Path:
    """Where `write_with_digest` keeps the SHA-256 of `path`: `<path>.sha256`."""
    path = Path(path)
    return path.with_name(path.name + DIGEST_SUFFIX)


def write_with_digest(path: Path, write: Callable[[Path], object], *, nbytes: int) -> str | None:
    """Writes `path` by `write(temporary)` (atomically) and its SHA-256 to `digest_path(path)`.

    Returns None when both are written; else why not, after a `CacheWarning` naming the folder.
    Never raises OSError: a folder that cannot be created or written, or too little free space
    for `nbytes` (checked before writing), skip the write. No temporary is left, and `path`
    is never left without its digest.
    """
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return _write_failed(folder, f"cannot create the folder: {describe(error)}")
    if (shortfall := lacks_room(folder, nbytes)) is not None:
        return _write_failed(folder, NO_ROOM, shortfall)
    try:
        with atomic_path(path) as tmp:
            write(tmp)
            digest = file_sha256(tmp)
        atomic_write_text(digest_path(path), f"{digest}  {path.name}\n")
    except OSError as error:
        remove_with_digest(path)
        return _write_failed(folder, f"cannot write {path.name}: {describe(error)}")
    return None


def digest_problem(path: Path) -> str | None:
    """None when the bytes of `path` match the digest `write_with_digest` wrote; else what differs."""
    try:
        recorded = digest_path(path).read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError):
        return f"no readable digest file {digest_path(path).name}"
    try:
        digest = file_sha256(path)
    except OSError as error:
        return f"unreadable: {describe(error)}"
    if not recorded or recorded[0] != digest:
        return "digest mismatch: the file's SHA-256 is not the one recorded when it was written"
    return None


def remove_with_digest(path: Path) -> None:
    """Removes `path` and its digest file, where they exist and can be removed."""
    for file in (path, digest_path(path)):
        with contextlib.suppress(OSError):
            file.unlink()


def _write_failed(folder: Path, reason: str, detail: str = "") -> str:
    warn_cache(folder, reason, NOT_CACHED, detail)
    return f"{reason} ({detail})" if detail else reason


def relative_to_root(path: str | os.PathLike[str], root: Path) -> str:
    """`path` relative to `root` in POSIX form when it lies below it, else as given."""
    path = Path(path)
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Writes `text` (UTF-8) to `path` atomically (see `atomic_path`); returns `path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def publish_directory_mode(path: Path) -> None:
    """Gives a `tempfile.mkdtemp` folder (0700) the mode a newly created folder would have."""
    os.chmod(path, 0o777 & ~_umask())
