"""``FitResult.to_arviz()``: the posterior (and, given the data, the observed sites) for ArviZ.

Works with the ArviZ installed for the running Python: 0.x builds an ``InferenceData``, 1.x a
``DataTree``. Groups:

* ``posterior``: every latent site, ``(chain, draw, ...)``; a VI fit is one chain of its draws,
  a NUTS fit keeps its chains;
* with the training data passed as keywords (``result.to_arviz(x=x, y=y)``), for every observed
  site: ``observed_data`` (the observed values), ``log_likelihood`` (``(chain, draw, n)``
  pointwise log densities, for ``az.loo`` and ``az.waic``) and ``posterior_predictive`` (one
  draw of the observation per posterior draw).

Variable names are the site names with ``/`` replaced by ``.`` (``beta/beta`` becomes
``beta.beta``): ArviZ 1.x's DataTree does not allow ``/`` in a variable name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers

from blayers_core.contract._typing import Array, ModelFn
from blayers_core.contract.errors import DataError
from blayers_core.engine.chunks import evaluate_in_chunks, join_chunks
from blayers_core.engine.data import split_prediction_data
from blayers_core.engine.dry_run import dry_run
from blayers_core.results.predictive import CHUNK_ELEMENTS

if TYPE_CHECKING:
    from blayers_core.api.result import FitResult

INSTALL_HINT = 'pip install "blayers-core[arviz]"'


def import_arviz() -> Any:
    """The ``arviz`` module, or an ImportError that says how to install it."""
    try:
        import arviz
    except ImportError as error:
        raise ImportError(f"this needs ArviZ, an optional dependency: {INSTALL_HINT}") from error
    return arviz


def arviz_major(az: Any) -> int:
    return int(str(az.__version__).split(".")[0])


def variable_name(site: str) -> str:
    """The ArviZ variable name of a site: ``/`` becomes ``.``."""
    return site.replace("/", ".")


def _by_chain(draws: Any, num_chains: int) -> np.ndarray:
    arr = np.asarray(draws)
    return arr.reshape(num_chains, arr.shape[0] // num_chains, *arr.shape[1:])


def _renamed(groups: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {}
    for group, variables in groups.items():
        renamed = {variable_name(k): v for k, v in variables.items()}
        if len(renamed) != len(variables):
            raise ValueError(
                f"sites {sorted(variables)} give clashing ArviZ names once '/' becomes '.'; "
                "rename a site"
            )
        out[group] = renamed
    return out


def _pointwise_program(
    model: ModelFn, sites: tuple[str, ...], static: dict[str, Any]
) -> Callable[..., Any]:
    """The jitted program of one chunk: ``(draws, keys, arrays) -> {site: (log_lik, draw, obs)}``,
    each ``(S, rows, ...)``."""

    def one(sample: dict[str, Any], key: jax.Array, rows: dict[str, Any]) -> Any:
        model_key, obs_key = jax.random.split(key)
        seeded = handlers.seed(handlers.substitute(model, data=sample), rng_seed=model_key)
        tr = handlers.trace(seeded).get_trace(**rows, **static)
        keys = jax.random.split(obs_key, len(sites))
        return {
            s: (tr[s]["fn"].log_prob(tr[s]["value"]), tr[s]["fn"].sample(k), tr[s]["value"])
            for s, k in zip(sites, keys, strict=True)
        }

    return jax.jit(jax.vmap(one, in_axes=(0, 0, None)))  # type: ignore[no-any-return]


def pointwise(
    model: ModelFn,
    samples: Mapping[str, Any],
    constants: Mapping[str, Any],
    sites: tuple[str, ...],
    data: Mapping[str, Any],
    *,
    seed: int = 0,
    chunk_rows: int | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Per observed site: ``log_likelihood`` and ``posterior_predictive`` ``(S, n, ...)`` and
    ``observed_data`` ``(n, ...)``, computed ``chunk_rows`` rows at a time."""
    new = split_prediction_data(data)
    all_constants = {**constants, **new.constants}
    observed = dry_run(model, new.rows, all_constants, seed=seed).observed_sites
    missing = [s for s in sites if s not in observed]
    if missing:
        raise DataError(
            f"the observed values of {missing} are missing: pass the training data including "
            "the target, e.g. result.to_arviz(x=x, y=y)"
        )
    draws = {k: jnp.asarray(v) for k, v in samples.items()}
    num_draws = next(iter(draws.values())).shape[0]
    base_key = jax.random.PRNGKey(seed)

    def chunk_key(index: int) -> Array:
        return jax.random.split(jax.random.fold_in(base_key, index), num_draws)

    row_axes = {s: (1, 1, 1) for s in sites}
    parts = [
        chunk.value
        for chunk in evaluate_in_chunks(
            ("pointwise", model, sites),
            lambda static: _pointwise_program(model, sites, static),
            new.rows,
            all_constants,
            chunk_rows=chunk_rows or max(1, CHUNK_ELEMENTS // num_draws),
            chunk_key=chunk_key,
            operands=draws,
            row_axes=row_axes,
        )
    ]
    joined = join_chunks(parts, row_axes)
    return {
        s: {
            "log_likelihood": joined[s][0],
            "posterior_predictive": joined[s][1],
            "observed_data": joined[s][2][0],  # the same for every draw
        }
        for s in sites
    }


def to_arviz(
    result: FitResult,
    *,
    seed: int = 0,
    chunk_rows: int | None = None,
    coords: Mapping[str, Any] | None = None,
    dims: Mapping[str, list[str]] | None = None,
    **data: Any,
) -> Any:
    """An ArviZ ``InferenceData`` (ArviZ 0.x) or ``DataTree`` (1.x) of ``result``.

    Args:
        result: the fit.
        seed: seeds the posterior predictive draws.
        chunk_rows: rows per compiled chunk when evaluating the observed sites.
        coords: ArviZ coordinates, e.g. ``{"feature": names}``.
        dims: ArviZ dimensions by site name, e.g. ``{"beta/beta": ["feature", "unit"]}``.
        **data: the training data, target included, to add the observed-site groups.
    """
    az = import_arviz()
    chains = result.num_chains
    groups: dict[str, dict[str, np.ndarray]] = {
        "posterior": {k: _by_chain(v, chains) for k, v in result.posterior_samples.items()}
    }
    if data:
        evaluated = pointwise(
            result.model,
            result.posterior_samples,
            result.constants,
            result.observed_sites,
            data,
            seed=seed,
            chunk_rows=chunk_rows,
        )
        for group in ("posterior_predictive", "log_likelihood"):
            groups[group] = {s: _by_chain(v[group], chains) for s, v in evaluated.items()}
        groups["observed_data"] = {s: v["observed_data"] for s, v in evaluated.items()}
    named = _renamed(groups)
    dims = {variable_name(k): list(v) for k, v in (dims or {}).items()} or None
    coords = dict(coords) if coords else None
    if arviz_major(az) >= 1:
        return az.from_dict(named, coords=coords, dims=dims)
    return az.from_dict(**named, coords=coords, dims=dims)
