"""JAX's persistent compilation cache, behind one setting.

Compiled programs are written to a folder and read back by later processes, so a second process
that fits the same model skips most of its compilation. Turn it on with the environment variable
``BLAYERS_COMPILATION_CACHE=/some/folder`` (read when ``blayers_core`` is imported) or by calling
:func:`enable_compilation_cache`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax

#: Environment variable naming the cache folder.
CACHE_ENV_VAR = "BLAYERS_COMPILATION_CACHE"


def enable_compilation_cache(path: str | os.PathLike[str]) -> Path:
    """Cache every compiled program (even quick ones) in ``path``; returns the folder."""
    folder = Path(path).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    update: Any = jax.config.update
    update("jax_compilation_cache_dir", str(folder))
    update("jax_persistent_cache_min_compile_time_secs", 0.0)
    update("jax_persistent_cache_min_entry_size_bytes", -1)
    return folder


def enable_from_environment() -> Path | None:
    """Enable the cache if ``BLAYERS_COMPILATION_CACHE`` is set; the folder, or ``None``."""
    path = os.environ.get(CACHE_ENV_VAR)
    return enable_compilation_cache(path) if path else None
