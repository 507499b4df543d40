"""Crash-safe training checkpoints.

A checkpoint holds everything needed to continue a run exactly where it stopped: every leaf of the
``SVIState`` (parameters, optimizer state, RNG key), the step reached, the losses so far, and what
fixes the data order (the seed, the number of rows and a fingerprint of the data). Files are
written atomically (:func:`~blayers_core.engine.atomic.write_atomically`: a temporary file,
``fsync``, ``os.replace``, ``fsync`` of the folder) and carry a SHA-256 checksum of their payload;
:meth:`Checkpointer.load_latest` skips a file whose checksum or format does not verify and falls
back to the previous one. The last ``keep`` files are kept.

File layout: the first line is ``blayers-checkpoint <format> <sha256 of the rest>``, the rest an
``.npz`` archive (no pickled code).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import attrs
import jax
import numpy as np

from blayers_core.engine.atomic import write_atomically

FORMAT = 1
_MAGIC = b"blayers-checkpoint"
_NAME = re.compile(r"^ckpt-(\d{10})\.blc$")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used to resume this run (and says why)."""


@attrs.frozen
class Checkpoint:
    """What a checkpoint restores."""

    step: int
    leaves: list[np.ndarray]
    losses: np.ndarray
    meta: dict[str, Any]
    path: Path


def data_fingerprint(rows: Mapping[str, Any], sample: int = 4096) -> str:
    """Names, shapes, dtypes and a strided sample of the row data, hashed."""
    digest = hashlib.sha256()
    for name in sorted(rows):
        arr = np.asarray(rows[name])
        digest.update(f"{name}{arr.shape}{arr.dtype}".encode())
        stride = max(1, arr.shape[0] // sample) if arr.ndim else 1
        digest.update(np.ascontiguousarray(arr[::stride] if arr.ndim else arr).tobytes())
    return digest.hexdigest()


class Checkpointer:
    """Writes and reads the checkpoints of one run in ``directory``.

    Args:
        directory: the folder (created if missing).
        keep: how many of the newest checkpoints to keep.
        meta: what must match on resume (seed, rows, batch size, total steps, data fingerprint).
    """

    def __init__(self, directory: str | os.PathLike[str], meta: Mapping[str, Any], keep: int = 3):
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.meta = dict(meta)
        self.keep = keep

    def paths(self) -> list[Path]:
        """Checkpoint files, oldest first."""
        found = [p for p in self.directory.iterdir() if _NAME.match(p.name)]
        return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))  # type: ignore[union-attr]

    def save(self, state: Any, step: int, losses: np.ndarray) -> Path:
        """Write the checkpoint for ``step`` atomically and prune old ones."""
        leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(state)]
        buffer = io.BytesIO()
        meta = {**self.meta, "step": int(step), "format": FORMAT, "num_leaves": len(leaves)}
        arrays: dict[str, np.ndarray] = {
            "meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
            "losses": np.asarray(losses),
            **{f"leaf_{i}": leaf for i, leaf in enumerate(leaves)},
        }
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        payload = buffer.getvalue()
        header = b"%s %d %s\n" % (_MAGIC, FORMAT, hashlib.sha256(payload).hexdigest().encode())

        def write(handle: BinaryIO) -> None:
            handle.write(header)
            handle.write(payload)

        target = write_atomically(self.directory / f"ckpt-{int(step):010d}.blc", write)
        for old in self.paths()[: -self.keep]:
            old.unlink(missing_ok=True)
        return target

    def _read(self, path: Path) -> Checkpoint:
        raw = path.read_bytes()
        header, _, payload = raw.partition(b"\n")
        parts = header.split(b" ")
        if len(parts) != 3 or parts[0] != _MAGIC:
            raise CheckpointError(f"{path.name} is not a blayers checkpoint")
        if int(parts[1]) != FORMAT:
            raise CheckpointError(
                f"{path.name} has format {int(parts[1])}, this blayers reads {FORMAT}"
            )
        if hashlib.sha256(payload).hexdigest().encode() != parts[2]:
            raise CheckpointError(f"{path.name} is corrupt: its checksum does not match")
        with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
            meta = json.loads(archive["meta"].tobytes().decode())
            leaves = [archive[f"leaf_{i}"] for i in range(meta["num_leaves"])]
            losses = archive["losses"]
        return Checkpoint(
            step=int(meta["step"]), leaves=leaves, losses=losses, meta=meta, path=path
        )

    def load_latest(self) -> Checkpoint | None:
        """The newest checkpoint that verifies, or ``None`` when there is none.

        Raises:
            CheckpointError: a valid checkpoint exists but belongs to a different run (other data,
                seed, batch size or number of steps).
        """
        for path in reversed(self.paths()):
            try:
                checkpoint = self._read(path)
            except (CheckpointError, OSError, ValueError, KeyError) as exc:
                warnings.warn(f"skipping checkpoint {path}: {exc}", stacklevel=2)
                continue
            mismatched = {
                k: (checkpoint.meta.get(k), v)
                for k, v in self.meta.items()
                if checkpoint.meta.get(k) != v
            }
            if mismatched:
                details = ", ".join(
                    f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in mismatched.items()
                )
                raise CheckpointError(
                    f"checkpoint {path} belongs to a different run ({details}); use another "
                    "checkpoint_dir or start afresh with resume=False"
                )
            return checkpoint
        return None
