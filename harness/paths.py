"""Where the harness keeps what it computes: converted weights, prepared data, feature caches.

Everything lives under one root so that users can inspect, move (`--cache-dir`) or delete it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

ENV_CACHE_DIR = "HARNESS_CACHE_DIR"


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
    and removes the temporary file, so no reader ever sees a half-written file.
    The temporary name keeps the suffix of `path` (Keras checks `.weights.h5`).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name.split('.')[0]}-", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp files are private (0600); publish with the mode a newly created file gets.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


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
