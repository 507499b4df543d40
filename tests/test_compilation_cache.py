"""The persistent compilation cache setting: a second process reads what the first compiled."""

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
    subprocess.run([sys.executable, "-c", SCRIPT], check=True, env=env)
    entries = set(os.listdir(tmp_path / "cache"))
    assert entries, "nothing was written to the cache"
    subprocess.run([sys.executable, "-c", SCRIPT], check=True, env=env)
    added = set(os.listdir(tmp_path / "cache")) - entries
    # The training chunk and the posterior draws are read back, not compiled again. (NumPyro's
    # initialisation iterates over a set of site names, so its program can differ between
    # processes with different string-hash seeds.)
    assert not [name for name in added if name.startswith(("jit__chunk", "jit_draw"))], added
    assert any(name.startswith("jit__chunk") for name in entries)
