"""A training run for the engine tests, meant to be killed or interrupted from outside.

    python engine_worker.py CHECKPOINT_DIR OUT.npz [--resume]

Fits a small regression with checkpoints after every chunk and saves the final parameters.
"""

import sys

import numpy as np

from blayers_core import fit
from blayers_plugins import AdaptiveLayer, gaussian_link_exp

NUM_STEPS, CHUNK = 3000, 100


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.3 * rng.normal(size=500)).astype(np.float32)
    return x, y


def model(x, y=None):
    return gaussian_link_exp(AdaptiveLayer()("mu", x), y)


def run(checkpoint_dir, out, resume):
    x, y = data()
    result = fit(
        model,
        x=x,
        y=y,
        batch_size=64,
        num_steps=NUM_STEPS,
        chunk_size=CHUNK,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=CHUNK,
        resume=resume,
        progress_bar=False,
        num_samples=10,
    )
    np.savez(
        out,
        steps_done=result.steps_done,
        interrupted=result.interrupted,
        **{k: np.asarray(v) for k, v in result.params.items()},
    )
    print(f"done steps={result.steps_done} interrupted={result.interrupted}", flush=True)


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2], "--resume" in sys.argv)
