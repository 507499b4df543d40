"""The persistent compilation cache: on by default, one setting to move it or turn it off, and a
second process reads what the first compiled."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import numpy as np
from blayers_core import fit
from blayers_plugins import AdaptiveLayer, gaussian_link_exp
x = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32); y = x.sum(1)
def model(x, y=None):
    return gaussian_link_exp(AdaptiveLayer()("mu", x), y)
fit(model, x=x, y=y, num_steps=20, progress_bar=False, num_samples=5)
"""


@pytest.mark.slow
def test_environment_variable_fills_and_reuses_the_cache(tmp_path) -> None:
    env = {**os.environ, "BLAYERS_COMPILATION_CACHE": str(tmp_path / "cache")}
    subprocess.run([sys.executable, "-c", SCRIPT], check=True, env={**env, "PYTHONHASHSEED": "1"})
    entries = set(os.listdir(tmp_path / "cache"))
    assert entries, "nothing was written to the cache"
    # Another string-hash seed: NumPyro iterates over sets while it initialises, and the compiled
    # initialisation must not depend on that order, or a second process would compile it again.
    subprocess.run([sys.executable, "-c", SCRIPT], check=True, env={**env, "PYTHONHASHSEED": "6"})
    added = set(os.listdir(tmp_path / "cache")) - entries
    reused = ("jit__chunk", "jit_draw", "jit_traced_init")
    assert not [name for name in added if name.startswith(reused)], added
    assert all(any(name.startswith(prefix) for name in entries) for prefix in reused)


CONFIG = "import blayers_core, jax; print(jax.config.jax_compilation_cache_dir)"


def _configured_folder(env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-c", CONFIG], check=True, capture_output=True, text=True, env=env
    )
    return out.stdout.strip().splitlines()[-1]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("BLAYERS_COMPILATION_CACHE", "JAX_COMPILATION_CACHE_DIR")
    }
    return {**env, **extra}


def test_cache_is_on_by_default_in_the_user_cache_folder(tmp_path) -> None:
    folder = _configured_folder(_clean_env(XDG_CACHE_HOME=str(tmp_path)))
    assert folder == str(tmp_path / "blayers" / "jax")
    assert (tmp_path / "blayers" / "jax").is_dir()


@pytest.mark.parametrize("value", ["off", "0", "False", "none", ""])
def test_cache_can_be_turned_off(tmp_path, value) -> None:
    env = _clean_env(XDG_CACHE_HOME=str(tmp_path), BLAYERS_COMPILATION_CACHE=value)
    assert _configured_folder(env) == "None"
    assert not (tmp_path / "blayers").exists()


def test_a_cache_folder_the_user_gave_jax_is_left_alone(tmp_path) -> None:
    env = _clean_env(XDG_CACHE_HOME=str(tmp_path), JAX_COMPILATION_CACHE_DIR=str(tmp_path / "own"))
    assert _configured_folder(env) == str(tmp_path / "own")
    assert not (tmp_path / "blayers").exists()
