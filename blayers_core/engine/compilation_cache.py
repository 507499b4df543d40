"""JAX's persistent compilation cache, on by default, behind one setting.

Compiled programs are written to a folder and read back by later processes, so a second process
that fits the same model (the README's example, a notebook restarted, a script run again) skips
compiling: the time to its first training step drops from seconds to well under one.

One setting, the environment variable ``BLAYERS_COMPILATION_CACHE`` (read when ``blayers_core`` is
imported):

* unset: ``$XDG_CACHE_HOME/blayers/jax`` (``~/.cache/blayers/jax``), at most
  :data:`DEFAULT_MAX_BYTES`, least recently used entries evicted first; left alone when JAX's own
  cache folder is already configured (``JAX_COMPILATION_CACHE_DIR``);
* a folder: that folder, without a size limit;
* ``off`` (or ``0``, ``false``, ``no``, ``none``, empty): no persistent cache.

:func:`enable_compilation_cache` does the same from code.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import Any

import jax

#: Environment variable naming the cache folder, or turning the cache off.
CACHE_ENV_VAR = "BLAYERS_COMPILATION_CACHE"

#: Values of :data:`CACHE_ENV_VAR` that turn the cache off (compared case-insensitively).
OFF_VALUES = frozenset({"", "0", "off", "false", "no", "none"})

#: Size limit of the default cache folder.
DEFAULT_MAX_BYTES = 1 << 30


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/blayers/jax``, or ``~/.cache/blayers/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "blayers" / "jax"


def enable_compilation_cache(path: str | os.PathLike[str], *, max_bytes: int = -1) -> Path:
    """Cache every compiled program (even quick ones) in ``path``; returns the folder.

    Args:
        path: the folder (created if missing).
        max_bytes: evict least recently used entries beyond this size; ``-1``: no limit.
    """
    folder = Path(path).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    update: Any = jax.config.update
    update("jax_compilation_cache_dir", str(folder))
    update("jax_persistent_cache_min_compile_time_secs", 0.0)
    update("jax_persistent_cache_min_entry_size_bytes", -1)
    if max_bytes >= 0 and importlib.util.find_spec("filelock") is None:
        max_bytes = -1  # JAX evicts under a file lock; without filelock, keep every entry
    update("jax_compilation_cache_max_size", max_bytes)
    return folder


def enable_from_environment() -> Path | None:
    """Apply :data:`CACHE_ENV_VAR` (see the module docstring); the folder in use, or ``None``."""
    value = os.environ.get(CACHE_ENV_VAR)
    if value is not None and value.strip().lower() in OFF_VALUES:
        return None
    if value is None and getattr(jax.config, "jax_compilation_cache_dir", None):
        return None  # the user configured JAX's cache: theirs to manage
    path, max_bytes = (default_cache_dir(), DEFAULT_MAX_BYTES) if value is None else (value, -1)
    try:
        return enable_compilation_cache(path, max_bytes=max_bytes)
    except OSError as error:
        warnings.warn(
            f"blayers could not use {path} for the compilation cache ({error}); every process "
            f"will compile from scratch. Set {CACHE_ENV_VAR} to a writable folder, or to 'off'.",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
