"""The MCMC engine: NUTS and HMC compiled once, checked against closed forms and NumPyro's MCMC.

* draws agree with the closed-form posterior of a Bayesian linear regression with known noise, and
  are those of ``numpyro.infer.MCMC`` with the same kernel and seed;
* a second run (new data of the same shapes, a new seed) compiles nothing, through
  ``sample_mcmc`` and through ``fit(method="nuts")``;
* 200 runs in one process leave the memory mappings and the resident memory flat;
* chains are split across devices when there are several (a subprocess with two host devices).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from helpers import compilations
from numpyro.diagnostics import effective_sample_size
from numpyro.infer import HMC, MCMC, NUTS

from blayers_core import fit
from blayers_core.engine.data import SplitData, split_rows_and_constants
from blayers_core.engine.diagnose import NonFiniteDensityError
from blayers_core.engine.mcmc import (
    McmcDraws,
    SamplingWarning,
    check_diagnostics,
    sample_mcmc,
)
from blayers_core.engine.mcmc_program import chunk_size_for

NOISE = 0.5  # the known noise sd
PRIOR = 2.0  # the coefficients' prior sd
TRUE_BETA = np.array([1.0, -0.5, 0.25])


def regression(x, y=None, noise=NOISE):
    """Bayesian linear regression with known noise, and a deterministic site."""
    beta = numpyro.sample("beta", dist.Normal(0.0, PRIOR).expand([x.shape[1]]).to_event(1))
    numpyro.deterministic("beta_sum", beta.sum())
    with numpyro.plate("rows", x.shape[0]):
        numpyro.sample("obs", dist.Normal(x @ beta, noise), obs=y)


def simulate(n: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x @ TRUE_BETA + NOISE * rng.normal(size=n)).astype(np.float32)
    return {"x": x, "y": y}


def closed_form(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean ``(d,)`` and covariance ``(d, d)`` of ``beta``."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    precision = x.T @ x / NOISE**2 + np.eye(x.shape[1]) / PRIOR**2
    cov = np.linalg.inv(precision)
    return cov @ x.T @ y / NOISE**2, cov


def run(
    data: dict[str, np.ndarray],
    *,
    kernel=NUTS,
    kernel_key="nuts",
    num_warmup: int = 100,
    num_samples: int = 100,
    num_chains: int = 1,
    seed: int = 0,
    progress_bar: bool = False,
    model=regression,
) -> McmcDraws:
    return sample_mcmc(
        model,
        split_rows_and_constants(data),
        kernel=kernel,
        kernel_key=kernel_key,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        seed=seed,
        progress_bar=progress_bar,
    )


def assert_near_posterior(grouped: np.ndarray, data: dict[str, np.ndarray]) -> None:
    """Draws ``(chains, draws, d)`` agree with the closed form within Monte-Carlo error (the
    mean within 5 standard errors, from the draws' effective sample size)."""
    mean, cov = closed_form(data["x"], data["y"])
    sd = np.sqrt(np.diag(cov))
    ess = np.asarray(effective_sample_size(grouped.astype(np.float64)))
    assert ess.min() > 50, ess
    flat = grouped.reshape(-1, grouped.shape[-1])
    ess = np.minimum(ess, len(flat))  # antithetic draws can estimate more
    np.testing.assert_array_less(np.abs(flat.mean(0) - mean), 5 * sd / np.sqrt(ess))
    np.testing.assert_allclose(flat.std(0), sd, rtol=0.2)


@pytest.fixture(scope="module")
def nuts_run() -> tuple[dict[str, np.ndarray], McmcDraws]:
    data = simulate()
    return data, run(data, num_warmup=200, num_samples=400, num_chains=2, seed=3)


def test_nuts_draws_agree_with_the_closed_form_posterior(nuts_run) -> None:
    data, draws = nuts_run
    assert draws.num_chains == 2 and draws.num_samples == 400
    assert draws.samples["beta"].shape == (2, 400, 3)
    assert draws.diverging is not None and draws.diverging.shape == (2, 400)
    assert draws.diverging.dtype == bool and not draws.diverging.any()
    flat = draws.flat()
    assert flat["beta"].shape == (800, 3)
    np.testing.assert_array_equal(flat["beta"][400:], draws.samples["beta"][1])  # chain after chain
    assert_near_posterior(draws.samples["beta"], data)


def test_deterministic_sites_are_returned(nuts_run) -> None:
    _, draws = nuts_run
    assert set(draws.samples) == {"beta", "beta_sum"}
    np.testing.assert_allclose(
        draws.samples["beta_sum"], draws.samples["beta"].sum(-1), rtol=1e-5, atol=1e-6
    )


def test_nuts_draws_are_those_of_numpyro_mcmc() -> None:
    """Same kernel, data and seed as NumPyro's ``MCMC``: the same draws."""
    data = simulate(seed=6)
    draws = run(data, seed=6)
    mcmc = MCMC(NUTS(regression), num_warmup=100, num_samples=100, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(6), **data, extra_fields=("diverging",))
    reference = mcmc.get_samples(group_by_chain=True)
    assert set(reference) == set(draws.samples)
    for site, value in reference.items():
        np.testing.assert_allclose(draws.samples[site], value, atol=1e-5)
    diverging = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
    np.testing.assert_array_equal(draws.diverging, diverging)


def test_hmc_kernel_samples_the_posterior() -> None:
    data = simulate(seed=1)
    draws = run(
        data,
        kernel=functools.partial(HMC, num_steps=2, trajectory_length=None),
        kernel_key=("hmc", 2),
        num_warmup=300,
        num_samples=1000,
        seed=2,
    )
    assert draws.samples["beta"].shape == (1, 1000, 3)
    assert draws.diverging is not None and draws.diverging.shape == (1, 1000)
    assert_near_posterior(draws.samples["beta"], data)


def test_chunks_of_the_progress_bar_do_not_change_the_draws() -> None:
    """43 iterations in chunks of 3: the last chunk runs 2 past the end, warm-up ends mid-chunk."""
    assert chunk_size_for(43, progress_bar=True) == 3
    data = simulate(seed=4)
    hmc = functools.partial(HMC, num_steps=4, trajectory_length=None)
    options = dict(kernel=hmc, kernel_key=("hmc", 4), num_warmup=23, num_samples=20, seed=5)
    whole = run(data, progress_bar=False, **options)
    chunked = run(data, progress_bar=True, **options)
    np.testing.assert_allclose(chunked.samples["beta"], whole.samples["beta"], atol=1e-5)
    np.testing.assert_array_equal(chunked.diverging, whole.diverging)


def test_second_run_with_new_data_and_seed_compiles_nothing() -> None:
    run(simulate(seed=0), seed=0)
    again = compilations(lambda: run(simulate(seed=7), seed=11))
    assert again == []


def test_a_static_constant_is_part_of_the_program() -> None:
    """``noise`` is a number: a new value is traced anew, not served the old program."""
    wide, narrow = (
        run({**simulate(seed=0), "noise": noise}, kernel_key="nuts", seed=0) for noise in (5.0, 0.1)
    )
    assert wide.samples["beta"].std(axis=1).mean() > 10 * narrow.samples["beta"].std(axis=1).mean()


def test_second_nuts_fit_compiles_nothing() -> None:
    options = dict(method="nuts", num_warmup=50, num_samples=50, progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)  # few draws on purpose
        fit(regression, **simulate(seed=0), seed=0, **options)
        messages = compilations(lambda: fit(regression, **simulate(seed=8), seed=9, **options))
    assert messages == []


def exponential(x, y=None):
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("rows", x.shape[0]):
        numpyro.sample("obs", dist.Exponential(jnp.exp(0.1 * (x @ beta))), obs=y)


def test_no_valid_start_names_the_site_and_row() -> None:
    data = simulate()
    data["y"] = np.abs(data["y"])
    data["y"][11] = -1.0
    with pytest.raises(NonFiniteDensityError) as info:
        run(data, model=exponential, num_warmup=5, num_samples=5, num_chains=2)
    assert "observed site 'obs' has log density -inf at row 11" in str(info.value)
    assert info.value.fault is not None and info.value.fault.row == 11
    assert "Cannot find valid initial parameters" in str(info.value.__cause__)


def test_check_diagnostics_reads_the_draws() -> None:
    rng = np.random.default_rng(0)
    diverging = np.zeros((2, 50), dtype=bool)
    diverging[1, 3] = True
    draws = McmcDraws(
        samples={"a": rng.normal(size=(2, 50)) + np.array([[0.0], [3.0]])},
        diverging=diverging,
        num_chains=2,
    )
    with pytest.warns(SamplingWarning) as record:
        messages = check_diagnostics(draws)
    assert messages[0].startswith("1 divergent transitions")
    assert any("R-hat" in m for m in messages) and any("bulk ESS" in m for m in messages)
    assert len(record) == len(messages)
    assert McmcDraws(samples={}, diverging=None, num_chains=1).num_samples == 0


def _mappings() -> int:
    return len(Path("/proc/self/maps").read_text().splitlines())


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux's /proc")
def test_repeated_runs_keep_memory_flat() -> None:
    """A program per run leaked ~450 mappings each (and crashed after ~140 runs)."""
    splits = [split_rows_and_constants(simulate(seed=s)) for s in range(5)]

    def one(i: int) -> None:
        split: SplitData = splits[i % 5]
        sample_mcmc(
            regression,
            split,
            kernel=NUTS,
            kernel_key="nuts",
            num_warmup=100,
            num_samples=100,
            num_chains=1 + i % 2,
            seed=i,
            progress_bar=False,
        )

    for i in range(6):
        one(i)
    mappings, rss = _mappings(), _rss_kib()
    for i in range(200):
        one(i)
    assert _mappings() - mappings < 100  # a leak of ~450 per run would add ~90,000
    assert _rss_kib() - rss < 32 * 1024  # KiB


MULTI_DEVICE_SCRIPT = """
import sys
import numpy as np, jax, numpyro, numpyro.distributions as dist
from numpyro.infer import NUTS
from blayers_core.engine.data import split_rows_and_constants
from blayers_core.engine.mcmc import sample_mcmc
from blayers_core.engine.mcmc_program import devices_for

def regression(x, y=None):
    beta = numpyro.sample("beta", dist.Normal(0.0, 2.0).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("rows", x.shape[0]):
        numpyro.sample("obs", dist.Normal(x @ beta, 0.5), obs=y)

assert jax.local_device_count() == 2 and devices_for(4) == 2
data = dict(np.load(sys.argv[1]))
draws = sample_mcmc(
    regression, split_rows_and_constants(data), kernel=NUTS, kernel_key="nuts",
    num_warmup=5, num_samples=5, num_chains=4, seed=3, progress_bar=False,
)
np.save(sys.argv[2], draws.samples["beta"])
"""


def _regression_without_deterministic(x, y=None):
    beta = numpyro.sample("beta", dist.Normal(0.0, PRIOR).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("rows", x.shape[0]):
        numpyro.sample("obs", dist.Normal(x @ beta, NOISE), obs=y)


@pytest.mark.slow
def test_chains_are_split_across_devices(tmp_path) -> None:
    """Four chains on two host devices (two each, vectorised): the draws of one device."""
    data = simulate()
    paths = [tmp_path / "data.npz", tmp_path / "beta.npy"]
    np.savez(paths[0], **data)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MULTI_DEVICE_SCRIPT), *paths],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    split = run(
        data,
        model=_regression_without_deterministic,
        num_warmup=5,
        num_samples=5,
        num_chains=4,
        seed=3,
    )
    # the same chains; a few iterations, so floating-point differences stay small
    np.testing.assert_allclose(np.load(paths[1]), split.samples["beta"], atol=1e-3)
