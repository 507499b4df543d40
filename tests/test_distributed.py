"""Several processes on ``jax.distributed``: each process fits its own rows, all get one result.

* :func:`blayers_core.distributed.initialize` checks its arguments before JAX sees them;
* two local CPU processes, each given its own (unequal) share of the rows, end with exactly the
  same losses, parameters, draws and predictions, and match a one-process fit on all the rows
  within Monte-Carlo tolerance (and the simulated coefficients);
* the checkpoints are written once (by process 0), and both processes resume from them to the
  same parameters, bit for bit, as the uninterrupted run;
* methods that run in one process refuse several, naming the method; a non-finite loss stops
  both processes at the same step, with the last finite state.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from blayers_core import distributed

WORKER = """
import json, sys
from pathlib import Path
from blayers_core import distributed

process, port, out = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
distributed.initialize(f"localhost:{port}", num_processes=2, process_id=process)

import jax
import numpy as np
from jax.experimental import multihost_utils
import blayers_core
from blayers_core import fit

adaptive, gaussian = blayers_core.layer("adaptive"), blayers_core.link("gaussian")

def model(x, y=None):
    return gaussian(adaptive("beta", x), y)

rng = np.random.default_rng(0)
x = rng.normal(size=(1000, 3)).astype(np.float32)
y = (x @ np.arange(1.0, 4.0) + rng.normal(size=1000)).astype(np.float32)
mine = slice(0, 520) if process == 0 else slice(520, 1000)   # unequal shares
options = dict(batch_size=128, lr=0.02, seed=1, progress_bar=False)

result = fit(model, x=x[mine], y=y[mine], num_epochs=150, **options)
prediction = result.predict(x=x[:5])
np.savez(
    out / f"fit-{process}.npz",
    losses=result.losses,
    beta=np.asarray(result.posterior_samples["beta/beta"]),
    sigma=np.asarray(result.posterior_samples["obs/sigma"]),
    predicted=np.asarray(prediction.mean),
    num_rows=result.num_rows,
    params=np.concatenate([np.ravel(v) for _, v in sorted(result.params.items())]),
)

errors = {}
try:
    fit(model, x=x[mine], y=y[mine], method="nuts", num_warmup=10, num_samples=10)
except ValueError as error:
    errors["nuts"] = str(error)
try:
    fit(model, x=x[mine], y=y[mine], devices=1, num_steps=5, **options)
except ValueError as error:
    errors["devices"] = str(error)
try:
    fit(model, x=x[mine], y=y[mine], num_steps=50, batch_size=128, lr=1e30, progress_bar=False)
except blayers_core.NonFiniteLossError as error:
    errors["nonfinite"] = [str(error), error.step, error.result is not None]

# checkpoints: written once, resumed by every process
folder = out / "checkpoints"
run = dict(num_steps=300, chunk_size=100, checkpoint_dir=folder, checkpoint_every=100, **options)
full = fit(model, x=x[mine], y=y[mine], **run)
multihost_utils.sync_global_devices("trained")
if process == 0:
    written = sorted(p.name for p in folder.iterdir())
    for path in sorted(folder.glob("ckpt-*.blc"))[1:]:   # keep step 100 only
        path.unlink()
else:
    written = None
multihost_utils.sync_global_devices("rewound")
resumed = fit(model, x=x[mine], y=y[mine], resume=True, **run)
same = all(
    np.array_equal(np.asarray(full.params[k]), np.asarray(resumed.params[k])) for k in full.params
)
json.dump(
    {"errors": errors, "written": written, "resumed_same": same,
     "resumed_losses_same": bool(np.array_equal(full.losses, resumed.losses))},
    open(out / f"run-{process}.json", "w"),
)
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return int(probe.getsockname()[1])


def _simulate() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 3)).astype(np.float32)
    y = (x @ np.arange(1.0, 4.0) + rng.normal(size=1000)).astype(np.float32)
    return x, y


@pytest.mark.slow
def test_two_processes_fit_one_posterior(tmp_path: Path) -> None:
    import json

    port = str(_free_port())
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WORKER), str(p), port, str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for p in (0, 1)
    ]
    logs = [w.communicate(timeout=600)[0] for w in workers]
    for worker, log in zip(workers, logs, strict=True):
        assert worker.returncode == 0, log[-4000:]
    first, second = (np.load(tmp_path / f"fit-{p}.npz") for p in (0, 1))
    for name in ("losses", "params", "beta", "sigma", "predicted", "num_rows"):  # one result
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)

    from blayers_core import fit, layer, link

    adaptive, gaussian = layer("adaptive"), link("gaussian")

    def model(x, y=None):
        return gaussian(adaptive("beta", x), y)

    x, y = _simulate()
    one = fit(model, x=x, y=y, batch_size=128, num_epochs=150, lr=0.02, seed=1, progress_bar=False)
    draws = np.asarray(one.posterior_samples["beta/beta"]).reshape(1000, -1)
    two = first["beta"].reshape(1000, -1)
    # 1000 rows: 8 batches of 128 an epoch in one process; in two, each device's share of an
    # epoch's slots must hold its 520 rows, so 9 batches (S B / D = 576 slots; padding masked)
    assert len(one.losses) == 150 * 8 and len(first["losses"]) == 150 * 9
    assert first["num_rows"] == one.num_rows == 1000
    # The batches differ (each holds rows of both processes), so the two fits differ as fits
    # with two seeds do: across six seeds the one-process means of beta spread by about
    # 0.015 (sd), a third of a posterior sd. Half a posterior sd is the tolerance.
    assert (np.abs(two.mean(0) - draws.mean(0)) < 0.5 * draws.std(0)).all()
    np.testing.assert_allclose(two.mean(0), [1.0, 2.0, 3.0], atol=0.15)
    assert abs(first["sigma"].mean() - np.mean(one.posterior_samples["obs/sigma"])) < 0.03

    runs = [json.loads((tmp_path / f"run-{p}.json").read_text()) for p in (0, 1)]
    assert runs[0]["written"] == [
        "ckpt-0000000100.blc",
        "ckpt-0000000200.blc",
        "ckpt-0000000300.blc",
    ]
    assert all(r["resumed_same"] and r["resumed_losses_same"] for r in runs)
    assert runs[0]["errors"]["nonfinite"] == runs[1]["errors"]["nonfinite"]  # the same step
    message, step, has_result = runs[0]["errors"]["nonfinite"]
    assert f"step {step}" in message and "2 processes" in message and has_result
    for run in runs:
        assert "runs in one process" in run["errors"]["nuts"]
        assert "devices=1" in run["errors"]["devices"] and "2 processes" in run["errors"]["devices"]


@pytest.mark.parametrize(
    ("arguments", "error", "words"),
    [
        ({"coordinator_address": "localhost"}, ValueError, "host:port"),
        ({"coordinator_address": "h:1", "num_processes": 0}, ValueError, "num_processes"),
        ({"coordinator_address": "h:1", "num_processes": 2.0}, TypeError, "num_processes"),
        ({"coordinator_address": "h:1", "num_processes": 2, "process_id": 2}, ValueError, "0 .. 1"),
        ({"coordinator_address": "h:1", "process_id": -1}, ValueError, "process_id"),
        ({"cpu_collectives": "nccl"}, ValueError, "gloo"),
    ],
)
def test_initialize_checks_its_arguments_before_jax(arguments, error, words) -> None:
    with pytest.raises(error, match=words):
        distributed.initialize(**arguments)


def test_one_process_is_the_main_process() -> None:
    assert distributed.is_main_process()
