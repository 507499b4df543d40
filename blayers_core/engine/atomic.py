"""Writing a file so that a crash never leaves half of it: :func:`write_atomically`.

The bytes go to a temporary file next to the target (same folder, so the same file system); the
file is flushed and ``fsync``-ed, then ``os.replace``-d over the target, which is atomic, and the
folder is ``fsync``-ed so that the rename itself survives a power cut. A reader sees the old file
or the new one, never a mix. If writing fails, the temporary file is removed and the old target,
if there is one, is left as it was.

Checkpoints (:mod:`blayers_core.engine.checkpoint`) and ``FitResult.save``
(:mod:`blayers_core.io.persistence`) both write through it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def temporary_path(path: Path) -> Path:
    """A fresh hidden name next to ``path``: ``.<name>.<random>.tmp``."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform opens folders
        return
    try:
        os.fsync(fd)
    except OSError:  # nor fsyncs them
        pass
    finally:
        os.close(fd)


def write_atomically(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> Path:
    """Replace ``path`` with what ``write(handle)`` writes, all at once or not at all.

    Args:
        path: the file to write; its folder must exist.
        write: writes the whole content to the open binary ``handle`` it is given.

    Returns:
        ``path``, as a :class:`~pathlib.Path`.

    Raises:
        Whatever ``write`` or the file system raises; the target is then unchanged and no
        temporary file is left behind.
    """
    target = Path(path)
    partial = temporary_path(target)
    try:
        with open(partial, "xb") as handle:  # "x": never reuse a file that is already there
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    return target
