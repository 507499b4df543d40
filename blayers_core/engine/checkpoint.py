"""Crash-safe training checkpoints.

A checkpoint holds everything needed to continue a run exactly where it stopped: every leaf of the
``SVIState`` (parameters, optimizer state, RNG key), the step reached, the losses so far, and what
fixes the data order (the seed, the number of rows and a fingerprint of the data). It also records
what the state belongs to: the model's latent sites (names, shapes and dtypes, in the order the
model meets them, :func:`model_sites`), the loss, guide and optimizer (registered names and
configs) and the path, shape and dtype of every state leaf. Resuming with a model or component
that differs in any of them raises :class:`CheckpointError` naming the first difference
(:func:`site_difference`, :func:`first_difference`): state leaves are restored by position, so a
packed guide (``auto_diagonal_normal``) would otherwise hand one site's values to another. Files are
written atomically (:func:`~blayers_core.engine.atomic.write_atomically`: a temporary file,
``fsync``, ``os.replace``, ``fsync`` of the folder) and carry a SHA-256 checksum of their payload;
:meth:`Checkpointer.load_latest` skips a file whose checksum or format does not verify and falls
back to the previous one. The last ``keep`` files are kept.

Opening a folder (:class:`Checkpointer`) removes the temporary files that writers killed
mid-write left there (:func:`~blayers_core.engine.atomic.remove_stale_temporaries`); those of a
writer that still runs are kept.

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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import attrs
import jax
import numpy as np
from numpyro import handlers

from blayers_core.engine.atomic import remove_stale_temporaries, write_atomically

FORMAT = 1
_MAGIC = b"blayers-checkpoint"
_NAME = re.compile(r"^ckpt-(\d{10})\.blc$")
#: Meta keys that record what the state belongs to; checkpoints written before they existed lack
#: them and resume with a warning that they cannot be checked.
RECORD_KEYS = ("components", "sites", "state")

#: A site or state leaf as recorded: ``(name, shape, dtype)``.
Entry = tuple[str, tuple[int, ...], str]


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


@attrs.frozen
class TracedSites:
    """The sites of one abstract run of a model (:func:`trace_sites`)."""

    latent: list[Entry]  # unobserved sample sites, in the order the model meets them, except
    # discrete ones summed out by enumeration (no draws of them are kept)
    deterministic: list[Entry]
    observed: list[str]


def trace_sites(
    model: Callable[..., Any], arrays: Mapping[str, Any], static: Mapping[str, Any]
) -> TracedSites:
    """The model's sites with their shapes and dtypes, traced abstractly.

    The model runs under :func:`jax.eval_shape` on ``arrays`` (rows and array constants: arrays
    or :class:`jax.ShapeDtypeStruct`) and ``static`` (other constants): nothing is computed or
    drawn, so the sizes of the arrays cost nothing.
    """
    kinds: dict[str, str] = {}

    def run(values: dict[str, Any], key: Any) -> dict[str, Any]:
        trace = handlers.trace(handlers.seed(model, rng_seed=key)).get_trace(**values, **static)
        kinds.clear()
        for name, site in trace.items():
            if name.startswith("_") or site["type"] not in ("sample", "deterministic"):
                continue
            observed = site["type"] == "sample" and site["is_observed"]
            enumerated = bool((site.get("infer") or {}).get("enumerate"))
            kinds[name] = "observed" if observed else "enumerated" if enumerated else site["type"]
        return {name: trace[name]["value"] for name in kinds}

    shapes = jax.eval_shape(run, dict(arrays), jax.random.PRNGKey(0))

    def entries(kind: str) -> list[Entry]:
        return [
            (name, tuple(shapes[name].shape), str(shapes[name].dtype))
            for name, k in kinds.items()
            if k == kind
        ]

    observed = [name for name, kind in kinds.items() if kind == "observed"]
    return TracedSites(entries("sample"), entries("deterministic"), observed)


def model_sites(
    model: Callable[..., Any], arrays: Mapping[str, Any], static: Mapping[str, Any]
) -> list[Entry]:
    """The model's latent sample sites as ``(name, shape, dtype)``, in the order it meets them
    (traced abstractly, see :func:`trace_sites`)."""
    return trace_sites(model, arrays, static).latent


def state_entries(state: Any) -> list[Entry]:
    """Every leaf of a training state as ``(path, shape, dtype)``: ``.optim_state[1][0]['auto_loc']``."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(state)
    return [
        (jax.tree_util.keystr(path), tuple(np.shape(leaf)), str(_dtype(leaf)))
        for path, leaf in leaves
    ]


def _dtype(leaf: Any) -> Any:
    """A leaf's dtype, without copying a device array to the host."""
    return leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype


def as_entries(recorded: Sequence[Any]) -> list[Entry]:
    """Recorded ``(name, shape, dtype)`` entries as tuples (JSON gives lists)."""
    return [
        (str(name), tuple(int(d) for d in shape), str(dtype)) for name, shape, dtype in recorded
    ]


def _described(entry: Entry) -> str:
    dtype = f", {entry[2]}" if entry[2] else ""
    return f"{entry[0]!r} (shape {entry[1]}{dtype})"


def site_difference(
    saved: Sequence[Any],
    now: Sequence[Any],
    *,
    ordered: bool = True,
    saved_as: str = "the checkpoint",
    now_as: str = "this model",
    what: str = "site",
) -> str | None:
    """The first difference between two lists of ``(name, shape, dtype)``, or ``None``.

    Args:
        saved: the recorded entries.
        now: the entries of the model (or state) at hand.
        ordered: the order counts (state restored by position); else entries match by name.
        saved_as: how the message names the record (``"the checkpoint"``).
        now_as: how it names the model at hand.
        what: what an entry is (``"site"``, ``"state leaf"``).
    """
    old, new = as_entries(saved), as_entries(now)
    old_names, new_names = {e[0]: e for e in old}, {e[0]: e for e in new}
    pairs = list(zip(old, new, strict=False)) if ordered else []
    for a, b in pairs:
        if a == b:
            continue
        if a[0] == b[0]:
            return _shape_difference(a, b, saved_as, now_as, what)
        if a[0] not in new_names:
            return f"{saved_as} has {what} {_described(a)}, which {now_as} lacks"
        if b[0] not in old_names:
            return f"{now_as} has {what} {_described(b)}, which {saved_as} lacks"
        return (
            f"{what} names or order differ: {saved_as} has {a[0]!r} where {now_as} has {b[0]!r} "
            f"({what} {old.index(a) + 1} of {len(old)})"
        )
    for entry in old:
        if entry[0] not in new_names:
            return f"{saved_as} has {what} {_described(entry)}, which {now_as} lacks"
        if entry != new_names[entry[0]]:
            return _shape_difference(entry, new_names[entry[0]], saved_as, now_as, what)
    for entry in new:
        if entry[0] not in old_names:
            return f"{now_as} has {what} {_described(entry)}, which {saved_as} lacks"
    return None


def _shape_difference(a: Entry, b: Entry, saved_as: str, now_as: str, what: str) -> str:
    if a[1] == b[1]:
        return f"{what} {a[0]!r} has dtype {a[2]} in {saved_as}; in {now_as} it has {b[2]}"
    return f"{what} {a[0]!r} has shape {a[1]} in {saved_as}; in {now_as} it has shape {b[1]}"


def first_difference(saved: Any, now: Any, where: str = "") -> tuple[str, Any, Any] | None:
    """Where two JSON-like values first differ, as ``(path, saved part, new part)``, or ``None``.

    The path reads like ``optimizer.config.learning_rate``; dict keys are visited in ``saved``'s
    order, then those only ``now`` has.
    """
    if isinstance(saved, Mapping) and isinstance(now, Mapping):
        for key in [*saved, *(k for k in now if k not in saved)]:
            found = first_difference(
                saved.get(key), now.get(key), f"{where}.{key}" if where else str(key)
            )
            if found is not None:
                return found
        return None
    if isinstance(saved, list | tuple) and isinstance(now, list | tuple):
        if len(saved) == len(now):
            for i, (a, b) in enumerate(zip(saved, now, strict=True)):
                found = first_difference(a, b, f"{where}[{i}]")
                if found is not None:
                    return found
            return None
    return None if saved == now else (where, saved, now)


def _as_json(value: Any) -> Any:
    """``value`` as it reads back from the checkpoint's JSON (tuples become lists)."""
    return json.loads(json.dumps(value, sort_keys=True))


def describe_mismatch(key: str, saved: Any, now: Any) -> str | None:
    """How the recorded ``saved`` value of meta ``key`` differs from ``now``, or ``None``."""
    if key == "sites":
        return site_difference(saved, now)
    if key == "state":
        return site_difference(saved, now, now_as="this run", what="state leaf")
    found = first_difference(saved, _as_json(now))
    if found is None:
        return None
    where, a, b = found
    label = key + ("" if not where or where.startswith("[") else ".") + where
    return f"{label}: the checkpoint has {a!r}, this run has {b!r}"


class Checkpointer:
    """Writes and reads the checkpoints of one run in ``directory``.

    Args:
        directory: the folder (created if missing).
        keep: how many of the newest checkpoints to keep.
        meta: what must match on resume (seed, rows, batch size, total steps, data fingerprint,
            and the record of :data:`RECORD_KEYS`: components, latent sites, state leaves).
        writer: ``False``: only read (resume); :meth:`save` writes nothing. A fit in several
            processes resumes in every process from the checkpoints its first process writes.

    Opening the folder removes the temporary files of checkpoint writers that died mid-write
    (a process id that no longer runs on this host; see
    :func:`~blayers_core.engine.atomic.remove_stale_temporaries`).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        meta: Mapping[str, Any],
        keep: int = 3,
        *,
        writer: bool = True,
    ):
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.directory = Path(directory)
        self.writer = writer
        if writer:
            self.directory.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(self.directory, lambda target: bool(_NAME.match(target)))
        self.meta = dict(meta)
        self.keep = keep

    def paths(self) -> list[Path]:
        """Checkpoint files, oldest first."""
        if not self.directory.is_dir():  # a reader's, before the writer made it
            return []
        found = [p for p in self.directory.iterdir() if _NAME.match(p.name)]
        return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))  # type: ignore[union-attr]

    def save(self, state: Any, step: int, losses: np.ndarray) -> Path:
        """Write the checkpoint for ``step`` atomically and prune old ones (a reader, e.g. every
        process but the first of a fit in several processes, writes nothing)."""
        if not self.writer:
            return self.directory / f"ckpt-{int(step):010d}.blc"
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
                seed, batch size or number of steps) or another model (latent sites), guide, loss,
                optimizer or training state; the message names the first difference.
        """
        for path in reversed(self.paths()):
            try:
                checkpoint = self._read(path)
            except (CheckpointError, OSError, ValueError, KeyError) as exc:
                warnings.warn(f"skipping checkpoint {path}: {exc}", stacklevel=2)
                continue
            self._check(checkpoint)
            return checkpoint
        return None

    def _check(self, checkpoint: Checkpoint) -> None:
        """Raise when ``checkpoint`` was written by another run, model or set of components."""
        unrecorded = [k for k in RECORD_KEYS if k in self.meta and k not in checkpoint.meta]
        if unrecorded:
            warnings.warn(
                f"checkpoint {checkpoint.path} was written by an older blayers and does not record "
                f"its {', '.join(unrecorded)}: the model and components it belongs to cannot be "
                "checked",
                UserWarning,
                stacklevel=3,
            )
        problems = [
            problem
            for key, value in self.meta.items()
            if key in checkpoint.meta or key not in RECORD_KEYS
            for problem in [describe_mismatch(key, checkpoint.meta.get(key), value)]
            if problem is not None
        ]
        if problems:
            raise CheckpointError(
                f"checkpoint {checkpoint.path} belongs to a different run ({'; '.join(problems)}); "
                "use another checkpoint_dir or start afresh with resume=False"
            )
