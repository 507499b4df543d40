"""Time to the first training step of the README's main model, cold and with a warm cache.

    python benchmarks/first_step.py [--repeats 3]

The model and settings are those of ``examples/diabetes.py`` (442 rows x 10 features, adaptive
prior, Gaussian link, ``auto_normal`` guide, Adam with a cosine schedule, batch 128, 3000 steps).
Each measurement is a fresh Python process:

* ``cold``: an empty persistent compilation cache (a new temporary folder), so everything
  compiles: the dry run, the initialisation, the training chunk and the posterior draws;
* ``warm``: the same folder again, as a second run of the README command finds it (the cache is
  on by default, in ``~/.cache/blayers/jax``);
* ``cache_off``: ``BLAYERS_COMPILATION_CACHE=off``, every process compiles.

``first_step_s`` runs from the call of ``fit`` until the first compiled chunk of steps has
finished (its 500 steps take about 10 ms); ``fit_s`` is the whole call (3000 steps and the
posterior draws); ``import_s`` is ``import blayers_core`` (JAX included) and the data. Prints ONE
JSON line with the median of each over ``--repeats`` processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, time
start = time.perf_counter()
import jax, optax
from blayers_core import fit, layer, link
from blayers_core.engine.program import TrainingProgram
sys.path.insert(0, {examples!r})
from diabetes import load_data
x, y, _ = load_data()
imported = time.perf_counter() - start
adaptive, gaussian = layer("adaptive"), link("gaussian")
def model(x, y=None):
    return gaussian(adaptive("beta", x), y)
marks = {{}}
run_chunk = TrainingProgram.run_chunk
def timed(self, *args, **kwargs):
    out = jax.block_until_ready(run_chunk(self, *args, **kwargs))
    marks.setdefault("first_step_s", time.perf_counter() - begin)
    return out
TrainingProgram.run_chunk = timed
begin = time.perf_counter()
fit(model, x=x, y=y, loss="batched_elbo", guide="auto_normal", optimizer="adam",
    lr=optax.cosine_decay_schedule(0.05, 3000), batch_size=128, num_steps=3000, seed=0,
    progress_bar=False)
marks["fit_s"] = time.perf_counter() - begin
marks["import_s"] = imported
print(json.dumps(marks))
"""


def run_child(cache: str) -> dict[str, float]:
    env = {**os.environ, "BLAYERS_COMPILATION_CACHE": cache}
    code = CHILD.format(examples=str(ROOT / "examples"))
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cold, warm, off = [], [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            cold.append(run_child(folder))
            warm.append(run_child(folder))
        off.append(run_child("off"))
    report = {
        "benchmark": "first_step",
        "model": "examples/diabetes.py",
        "repeats": args.repeats,
        "cold": median(cold),
        "warm": median(warm),
        "cache_off": median(off),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
