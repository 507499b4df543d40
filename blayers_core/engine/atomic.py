"""Writing a file so that a crash never leaves half of it: :func:`write_atomically`.

The bytes go to a temporary file next to the target (same folder, so the same file system); the
file is flushed and ``fsync``-ed, then ``os.replace``-d over the target, which is atomic, and the
folder is ``fsync``-ed so that the rename itself survives a power cut. A reader sees the old file
or the new one, never a mix. If writing fails, the temporary file is removed and the old target,
if there is one, is left as it was.

A writer killed mid-write (``SIGKILL``, a power cut) cannot remove its temporary file, so the
name says whose it is: ``.<name>.<host>.<pid>.<random>.tmp``. :func:`remove_stale_temporaries`
deletes the ones whose writer is gone: on this host, a process id that no longer runs; from
another host, on Windows (where a process cannot be asked without signalling it), or of the older
``.<name>.<random>.tmp`` naming that carries no process id, a file untouched for
:data:`STALE_AFTER_S` seconds (a live writer keeps touching its file, and a write takes seconds).
The file of a writer that is still running is never touched. Writers that share a folder from
machines (or containers) of the same host name but different process tables are not told apart.

Checkpoints (:mod:`blayers_core.engine.checkpoint`) and ``FitResult.save``
(:mod:`blayers_core.io.persistence`) both write through it and clean up on opening.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

#: Seconds after its last change when a temporary file whose writer cannot be asked (another
#: host, or the older naming without a process id) counts as abandoned.
STALE_AFTER_S = 3600.0

_TOKEN = r"[0-9a-f]{12}"
_NEW = re.compile(rf"^\.(?P<target>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.{_TOKEN}\.tmp$")
_OLD = re.compile(rf"^\.(?P<target>.+)\.{_TOKEN}\.tmp$")


def host_name() -> str:
    """This machine's name as temporary file names carry it: letters, digits and ``-`` only, at
    most 40 characters."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "unknown-host"


def temporary_path(path: Path) -> Path:
    """A fresh hidden name next to ``path``: ``.<name>.<host>.<pid>.<random>.tmp``."""
    return path.with_name(f".{path.name}.{host_name()}.{os.getpid()}.{secrets.token_hex(6)}.tmp")


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


def process_is_running(pid: int) -> bool | None:
    """Whether a process with this id runs on this machine; ``None`` where it cannot be told.

    A process id the system has given to a new process since counts as running, so the file of
    a dead writer whose id was reused waits until that process ends.
    """
    if pid <= 0 or os.name == "nt":  # on Windows os.kill(pid, 0) would signal the process
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it runs, as another user
        return True
    return True


def is_stale_temporary(path: Path, now: float | None = None) -> bool:
    """Whether ``path`` is a temporary file of :func:`write_atomically` whose writer is gone."""
    new = _NEW.match(path.name)
    if new is not None and new["host"] == host_name():
        running = process_is_running(int(new["pid"]))
        if running is not None:
            return not running
    elif new is None and _OLD.match(path.name) is None:
        return False  # not one of ours
    try:
        changed = path.stat().st_mtime
    except FileNotFoundError:
        return False
    return (time.time() if now is None else now) - changed > STALE_AFTER_S


def temporary_target(path: Path) -> str | None:
    """The name of the file a temporary file of :func:`write_atomically` was to become."""
    match = _NEW.match(path.name) or _OLD.match(path.name)
    return None if match is None else match["target"]


def remove_stale_temporaries(
    folder: str | os.PathLike[str], targets: Callable[[str], bool] | None = None
) -> list[Path]:
    """Delete the temporary files in ``folder`` left by writers that died mid-write.

    Args:
        folder: where to look (not recursively); a missing folder holds nothing.
        targets: only temporary files of targets whose name this accepts (default: all).

    Returns:
        The files removed. A file another process removes first is skipped.
    """
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except FileNotFoundError:
        return removed
    for path in entries:
        target = temporary_target(path)
        if target is None or (targets is not None and not targets(target)):
            continue
        if is_stale_temporary(path):
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed.append(path)
    return removed
