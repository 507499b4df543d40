"""The training engine's fault handling: non-finite stop, Ctrl-C, kill-and-resume, NUTS."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from helpers import site_summary

from blayers_core import fit
from blayers_core.engine import runner
from blayers_core.engine.checkpoint import Checkpointer
from blayers_core.engine.mcmc import SamplingWarning
from blayers_core.engine.program import TrainingProgram
from blayers_core.engine.runner import NonFiniteLossError
from blayers_plugins import AdaptiveLayer, gaussian_link_exp

WORKER = Path(__file__).with_name("engine_worker.py")


def model(x, y=None):
    return gaussian_link_exp(AdaptiveLayer()("mu", x), y)


def test_non_finite_loss_stops_with_the_last_finite_state_and_the_culprit_rows() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 2)).astype(np.float32)
    y = (x @ np.array([1.0, -1.0])).astype(np.float32)
    x[37] = 1e30  # finite, but its squared residual overflows float32
    with pytest.raises(NonFiniteLossError, match=r"training stopped at step \d+") as info:
        fit(model, x=x, y=y, batch_size=10, num_epochs=3, chunk_size=7, progress_bar=False)
    error = info.value
    assert 37 in error.rows and len(error.rows) == 10
    assert len(error.losses) == error.step and np.isfinite(error.losses).all()
    result = error.result
    assert result.steps_done == error.step
    assert all(np.isfinite(np.asarray(v)).all() for v in result.params.values())
    assert all(np.isfinite(np.asarray(v)).all() for v in result.posterior_samples.values())


def test_progress_bar_rate_counts_from_the_end_of_the_first_chunk(monkeypatch) -> None:
    """The first chunk holds the compilation: the steps/s shown must not include it."""
    bars: list[Any] = []

    class RecordingBar(runner.tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            bars.append(self)

    first_chunk_done: list[float] = []
    run_chunk = TrainingProgram.run_chunk

    def slow_first_chunk(self: TrainingProgram, *args: Any, **kwargs: Any) -> Any:
        out = jax.block_until_ready(run_chunk(self, *args, **kwargs))
        if not first_chunk_done:
            time.sleep(0.5)  # as if compiling
            first_chunk_done.append(time.time())
        return out

    monkeypatch.setattr(runner, "tqdm", RecordingBar)
    monkeypatch.setattr(TrainingProgram, "run_chunk", slow_first_chunk)
    x = np.linspace(-1, 1, 40, dtype=np.float32)[:, None]
    fit(model, x=x, y=x[:, 0], batch_size=10, num_steps=40, chunk_size=10, progress_bar=True)
    (bar,) = bars
    assert (bar.n, bar.initial) == (40, 10)
    assert bar.start_t >= first_chunk_done[0]  # the clock restarted after the slow chunk


def test_corrupt_newest_checkpoint_falls_back_to_the_previous(tmp_path) -> None:
    checkpointer = Checkpointer(tmp_path, meta={"run": 1}, keep=3)
    state = {"a": np.arange(3.0), "b": np.ones((2, 2), np.float32)}
    checkpointer.save(state, 100, np.zeros(100))
    newest = checkpointer.save({"a": np.arange(3.0) + 1, "b": state["b"]}, 200, np.zeros(200))
    raw = bytearray(newest.read_bytes())
    raw[-10] ^= 0xFF  # flip one byte of the payload
    newest.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="checksum does not match"):
        loaded = checkpointer.load_latest()
    assert loaded.step == 100
    np.testing.assert_array_equal(loaded.leaves[0], np.arange(3.0))
    for step in (300, 400, 500):
        checkpointer.save(state, step, np.zeros(step))
    assert [int(p.name[5:15]) for p in checkpointer.paths()] == [300, 400, 500]  # keeps 3
    other = Checkpointer(tmp_path, meta={"run": 2})
    with pytest.raises(RuntimeError, match="belongs to a different run"):
        other.load_latest()


def _start(tmp_path: Path, out: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(tmp_path / "ckpt"), str(tmp_path / out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_checkpoints(directory: Path, count: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if directory.exists() and len(list(directory.glob("ckpt-*.blc"))) >= count:
            return
        if process.poll() is not None:
            pytest.fail(f"worker ended early: {process.communicate()}")
        time.sleep(0.05)
    pytest.fail("no checkpoint appeared")


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_parameters_bit_for_bit(tmp_path) -> None:
    worker = _start(tmp_path, "killed.npz")
    _wait_for_checkpoints(tmp_path / "ckpt", 2, worker)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert not (tmp_path / "killed.npz").exists()

    resumed = _start(tmp_path, "resumed.npz", "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    # The uninterrupted run, in a fresh folder.
    (tmp_path / "fresh").mkdir()
    straight = _start(tmp_path / "fresh", "straight.npz")
    straight.communicate(timeout=300)
    a = np.load(tmp_path / "resumed.npz")
    b = np.load(tmp_path / "fresh" / "straight.npz")
    assert int(a["steps_done"]) == int(b["steps_done"]) == 3000
    for name in ("auto_loc", "auto_scale"):
        np.testing.assert_array_equal(a[name], b[name])  # bit for bit


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_keeps_the_state_and_says_how_to_resume(tmp_path) -> None:
    worker = _start(tmp_path, "interrupted.npz")
    _wait_for_checkpoints(tmp_path / "ckpt", 1, worker)
    worker.send_signal(signal.SIGINT)
    _, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    assert "training interrupted after" in err and "resume=True" in err
    saved = np.load(tmp_path / "interrupted.npz")
    assert bool(saved["interrupted"]) and 0 < int(saved["steps_done"]) < 3000
    assert np.isfinite(saved["auto_loc"]).all()
    # The interruption left a checkpoint at the step reached: resuming continues from there.
    latest = Checkpointer(tmp_path / "ckpt", meta={}).load_latest()
    assert latest.step == int(saved["steps_done"])


@pytest.mark.slow
def test_nuts_runs_the_model_by_name_and_predicts() -> None:
    from blayers_core import layer, link

    adaptive, gaussian = layer("adaptive"), link("gaussian")

    def by_name(x, y=None):
        return gaussian(adaptive("beta", x), y)

    rng = np.random.default_rng(2)
    x = rng.normal(size=(150, 2)).astype(np.float32)
    y = (x @ np.array([0.8, -1.2]) + 0.5 * rng.normal(size=150)).astype(np.float32)
    result = fit(
        by_name, x=x, y=y, method="nuts", num_warmup=300, num_samples=300, progress_bar=False
    )
    assert result.method == "nuts"
    least_squares = np.linalg.lstsq(x, y, rcond=None)[0]
    np.testing.assert_allclose(site_summary(result, "beta/beta"), least_squares, atol=0.05)
    assert result.predict(x=x[:5]).mean.shape == (5,)


@pytest.mark.slow
def test_nuts_warns_on_a_funnel() -> None:
    """Eight schools, centred: the classic funnel that makes NUTS diverge."""
    y = np.array([28.0, 8, -3, 7, -1, 1, 18, 12], dtype=np.float32)
    sigma = np.array([15.0, 10, 16, 11, 9, 11, 10, 18], dtype=np.float32)

    def schools(sigma, y=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
        tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
        with numpyro.plate("school", sigma.shape[0]):
            theta = numpyro.sample("theta", dist.Normal(mu, tau))
            numpyro.sample("obs", dist.Normal(theta, sigma), obs=y)

    with pytest.warns(SamplingWarning, match="divergent transitions"):
        fit(
            schools,
            sigma=sigma,
            y=y,
            method="nuts",
            num_warmup=300,
            num_samples=300,
            seed=1,
            progress_bar=False,
        )
