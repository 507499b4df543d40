"""Model faults that must not give a silently wrong answer.

* a per-row (local) latent under minibatches raises before training, naming the site; full batch
  it works, and a global parameter whose length happens to equal the number of rows is not one;
* a log density of -inf where training or sampling starts names the site, the row and the value
  (VI and NUTS), re-evaluated outside ``jit``.
"""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

from blayers_core import fit
from blayers_core.engine.diagnose import NonFiniteDensityError, find_fault
from blayers_core.engine.runner import NonFiniteLossError
from blayers_plugins import AdaptiveLayer, gaussian_link_exp

N = 60
QUICK = dict(num_steps=6, progress_bar=False, num_samples=4)


def data(n: int = N, d: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, (x.sum(axis=1) + 0.1 * rng.normal(size=n)).astype(np.float32)


# ------------------------------------------------------------------------------ local latents
def local_in_plate(x, y=None):
    """A per-row offset ``z`` inside a plate over the rows."""
    b = numpyro.sample("b", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("rows", x.shape[0]):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        return numpyro.sample("obs", dist.Normal(x @ b + z, 1.0), obs=y)


def local_expanded(x, y=None):
    """A per-row latent without a plate: its shape is read off the data."""
    u = numpyro.sample("u", dist.Normal(0.0, 1.0).expand([x.shape[0], 2]).to_event(2))
    with numpyro.plate("rows", x.shape[0]):
        return numpyro.sample("obs", dist.Normal(u.sum(-1), 1.0), obs=y)


@pytest.mark.parametrize(
    ("model", "site", "shapes"),
    [
        (local_in_plate, "'z' inside plate 'rows' of size 60", "shape (60,) on 60 rows and (20,)"),
        (local_expanded, "'u'", "shape (60, 2) on 60 rows and (20, 2)"),
    ],
)
def test_local_latent_under_minibatches_raises_naming_the_site(model, site, shapes) -> None:
    x, y = data()
    with pytest.raises(ValueError, match="per-row") as info:
        fit(model, x=x, y=y, batch_size=20, **QUICK)
    message = str(info.value)
    assert f"latent site {site}" in message and shapes in message
    assert "batch_size=None" in message and "random_effects" in message


@pytest.mark.parametrize(("model", "site"), [(local_in_plate, "z"), (local_expanded, "u")])
def test_local_latent_full_batch_has_one_entry_per_row(model, site) -> None:
    x, y = data()
    result = fit(model, x=x, y=y, **QUICK)
    assert result.posterior_samples[site].shape[:2] == (4, N)


def global_vector_of_length_n(x, y=None):
    """Coefficients over the features: as many as rows here, yet global."""
    with numpyro.plate("features", x.shape[1]):
        b = numpyro.sample("b", dist.Normal(0.0, 1.0))
    with numpyro.plate("rows", x.shape[0]):
        return numpyro.sample("obs", dist.Normal(x @ b, 1.0), obs=y)


def adaptive_n_features(x, y=None):
    return gaussian_link_exp(AdaptiveLayer()("mu", x), y)


@pytest.mark.parametrize(
    ("model", "site"), [(global_vector_of_length_n, "b"), (adaptive_n_features, "mu/beta")]
)
def test_no_false_positive_for_a_global_vector_as_long_as_the_data(model, site) -> None:
    n = 12
    x, y = data(n=n, d=n)  # n features == n rows: the coefficients' length equals n
    result = fit(model, x=x, y=y, batch_size=4, **QUICK)
    assert result.posterior_samples[site].shape[:2] == (4, n)


# --------------------------------------------------------------------------- -inf densities
def exponential_raw(x, y=None):
    """A raw NumPyro site: Exponential, whose support excludes negative values."""
    b = numpyro.sample("b", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("rows", x.shape[0]):
        return numpyro.sample("obs", dist.Exponential(jnp.exp(0.1 * (x @ b))), obs=y)


def negative_target() -> tuple[np.ndarray, np.ndarray]:
    x, y = data()
    y = np.abs(y)
    y[17] = -1.0
    return x, y


def huge_target() -> tuple[np.ndarray, np.ndarray]:
    x, y = data()
    y[23] = 1e30  # finite, but its squared residual overflows float32
    return x, y


CASES = {
    "negative under Exponential": (exponential_raw, negative_target, 17, "value -1 ", "support"),
    "huge under a Gaussian link": (adaptive_n_features, huge_target, 23, "value 1e+30", "rescale"),
}
METHODS = {
    "vi full batch": dict(num_steps=5),
    "vi minibatch": dict(batch_size=20, num_epochs=2),
    "nuts": dict(method="nuts", num_warmup=5, num_chains=1),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("method", METHODS)
def test_minus_infinite_density_names_the_site_row_and_value(case, method) -> None:
    model, make_data, row, value, cause = CASES[case]
    x, y = make_data()
    nuts = method == "nuts"
    expected = NonFiniteDensityError if nuts else NonFiniteLossError
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumPyro's own warning on out-of-support values
        with pytest.raises(expected) as info:
            fit(model, x=x, y=y, progress_bar=False, num_samples=4, **METHODS[method])
    error = info.value
    message = str(error)
    assert f"observed site 'obs' has log density -inf at row {row}: {value}" in message
    assert cause in message and "outside jit" in message
    assert error.fault is not None and (error.fault.site, error.fault.row) == ("obs", row)
    if nuts:  # NumPyro's own error is kept as the cause
        assert "Cannot find valid initial parameters" in str(error.__cause__)
    else:
        assert row in error.rows


def test_find_fault_reports_parameters_at_the_row_and_maps_batch_rows_to_data_rows() -> None:
    def model(rate, y):
        with numpyro.plate("rows", y.shape[0]):
            numpyro.sample("obs", dist.Exponential(rate), obs=y)

    rate = jnp.array([1.0, 2.0, 3.0])
    y = jnp.array([0.5, 1.0, -2.0])
    fault = find_fault(model, {"rate": rate, "y": y}, num_rows=3, row_ids=np.array([40, 7, 91]))
    assert fault is not None
    assert (fault.site, fault.row, fault.index) == ("obs", 91, (2,))
    assert float(fault.params["rate"]) == 3.0 and fault.in_support is False
    assert "row 91: value -2 under Exponential(rate=3)" in fault.describe()
    y_ok = jnp.abs(y)
    assert find_fault(model, {"rate": rate, "y": y_ok}, num_rows=3) is None
