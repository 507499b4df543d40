r"""Posterior predictive summaries of an observed site, computed in row chunks.

For posterior draws :math:`\theta^{(s)}, s = 1..S` and new rows :math:`x_i`, the model is run once
per draw with the latent sites fixed to :math:`\theta^{(s)}`; the observed site's distribution
:math:`p(y_i \mid \theta^{(s)}, x_i)` is taken from a NumPyro trace. Then

* ``kind="mean"``: :math:`v_i^{(s)} = \mathbb{E}[y_i \mid \theta^{(s)}, x_i]`, the linear predictor
  through the inverse link (the distribution's ``.mean``; class probabilities ``(n, K)`` for a
  categorical or ordinal link);
* ``kind="response"``: :math:`v_i^{(s)} \sim p(y_i \mid \theta^{(s)}, x_i)`, a draw of the
  observation,

and the summaries over draws are the mean, the sd and the requested quantiles of
:math:`v_i^{(\cdot)}`.

Rows are processed ``chunk_rows`` at a time by one jitted program
(:func:`~blayers_core.engine.chunks.evaluate_in_chunks`); the last chunk is padded to the same
shape, so a prediction compiles once per chunk shape however many rows there are. Memory stays
``O(S * chunk_rows)`` on the device; only the summaries (and the draws, when asked for) are gathered
on the host. ``kind="mean"`` does not depend on the chunking; ``kind="response"`` draws are
reproducible for a given ``seed`` and ``chunk_rows``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.distributions import CategoricalLogits, CategoricalProbs, Distribution

from blayers_core.contract._typing import Array, ModelFn
from blayers_core.engine.chunks import evaluate_in_chunks, join_chunks
from blayers_core.engine.data import check_data_signature, split_prediction_data
from blayers_core.engine.dry_run import dry_run

#: Values (draws x rows x event) one chunk may hold on the device; sets the default ``chunk_rows``.
CHUNK_ELEMENTS = 1 << 23
KINDS = ("mean", "response")
#: The central interval reported when neither ``interval`` nor ``quantiles`` is given.
DEFAULT_INTERVAL = 0.9
#: The row axis of each output of a chunk: mean ``(n, ...)``, sd, quantiles ``(Q, n, ...)``, draws
#: ``(S, n, ...)``.
_ROW_AXES = (0, 0, 1, 1)


@attrs.frozen
class Predictions:
    """Posterior predictive summaries of one observed site.

    Attributes:
        site: the observed site's name (e.g. ``"obs"``).
        mean: ``(n, ...)`` mean over posterior draws.
        sd: ``(n, ...)`` standard deviation over posterior draws.
        draws: ``(num_samples, n, ...)`` the draws, when asked for with ``return_draws=True``;
            otherwise ``None``.
        kind: ``"mean"`` (expected value of the observation) or ``"response"`` (observations).
        quantile_levels: the levels of :attr:`quantiles`, increasing.
        quantiles: ``(len(quantile_levels), n, ...)`` quantiles over posterior draws.
    """

    site: str
    mean: np.ndarray
    sd: np.ndarray
    draws: np.ndarray | None = attrs.field(default=None, repr=False)
    kind: str = "response"
    quantile_levels: tuple[float, ...] = ()
    quantiles: np.ndarray = attrs.field(factory=lambda: np.zeros((0,)), repr=False)

    @property
    def std(self) -> np.ndarray:
        """Alias of :attr:`sd`, as in BLayers."""
        return self.sd

    def quantile(self, level: float) -> np.ndarray:
        """The ``(n, ...)`` quantile at ``level``, one of :attr:`quantile_levels`."""
        for i, q in enumerate(self.quantile_levels):
            if np.isclose(q, level):
                return self.quantiles[i]  # type: ignore[no-any-return]
        raise KeyError(
            f"quantile {level} was not computed; computed: {list(self.quantile_levels)}. "
            "Pass quantiles=(...) or interval= to predict"
        )

    @property
    def lower(self) -> np.ndarray:
        """The lowest computed quantile (the lower interval bound)."""
        return self._bound(0)

    @property
    def upper(self) -> np.ndarray:
        """The highest computed quantile (the upper interval bound)."""
        return self._bound(-1)

    def _bound(self, i: int) -> np.ndarray:
        if not self.quantile_levels:
            raise ValueError("no quantiles were computed: pass interval= or quantiles= to predict")
        return self.quantiles[i]  # type: ignore[no-any-return]


def quantile_levels(interval: float | None, quantiles: Sequence[float] | None) -> tuple[float, ...]:
    """The quantile levels asked for by ``interval`` (central) or ``quantiles`` (explicit).

    With neither, the central 90% interval; ``quantiles=()`` asks for none.
    """
    if interval is not None and quantiles is not None:
        raise ValueError(
            "give either interval= (a central interval, e.g. 0.9) or quantiles= (e.g. "
            "(0.05, 0.5, 0.95)), not both"
        )
    if quantiles is not None:
        if isinstance(quantiles, str) or not isinstance(quantiles, Sequence):
            raise TypeError(f"quantiles must be a sequence of levels in (0, 1), got {quantiles!r}")
        levels = tuple(float(q) for q in quantiles)
        if not all(0 < q < 1 for q in levels):
            raise ValueError(f"quantiles must be levels in (0, 1), got {quantiles!r}")
        return tuple(sorted(set(levels)))
    if interval is None:
        interval = DEFAULT_INTERVAL
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not 0 < interval < 1:
        raise ValueError(f"interval must be a probability in (0, 1), e.g. 0.9; got {interval!r}")
    return ((1 - interval) / 2, (1 + interval) / 2)


def expected_value(fn: Distribution) -> jax.Array:
    """``E[y]`` of an observed site's distribution; class probabilities for categorical ones."""
    base = fn
    while not isinstance(base, CategoricalProbs | CategoricalLogits) and hasattr(base, "base_dist"):
        base = base.base_dist
    if isinstance(base, CategoricalProbs | CategoricalLogits):
        return jnp.broadcast_to(base.probs, fn.batch_shape + base.probs.shape[-1:])
    try:
        return jnp.broadcast_to(fn.mean, fn.batch_shape + fn.event_shape)
    except NotImplementedError as error:
        raise NotImplementedError(
            f"the observed distribution {type(fn).__name__} has no mean: use kind='response'"
        ) from error


def _one_draw(
    model: ModelFn, site: str, kind: str, static: Mapping[str, Any]
) -> Callable[..., jax.Array]:
    def run(sample: dict[str, jax.Array], key: jax.Array, arrays: dict[str, jax.Array]) -> Any:
        model_key, obs_key = jax.random.split(key)
        seeded = handlers.seed(handlers.substitute(model, data=sample), rng_seed=model_key)
        fn = handlers.trace(seeded).get_trace(**arrays, **static)[site]["fn"]
        return expected_value(fn) if kind == "mean" else fn.sample(obs_key)

    return run


def _chunk_program(
    model: ModelFn,
    site: str,
    kind: str,
    levels: tuple[float, ...],
    return_draws: bool,
    on_device: bool,
    static: dict[str, Any],
) -> Callable[..., Any]:
    """The jitted program of one chunk: ``(samples, keys, arrays) -> (mean, sd, q, draws)``.

    On an accelerator the quantiles are computed on the device; on the CPU the draws come back and
    NumPy computes them (selection instead of XLA's sort: about five times faster).
    """
    one = _one_draw(model, site, kind, static)

    @jax.jit
    def chunk(samples: dict[str, jax.Array], keys: jax.Array, arrays: dict[str, jax.Array]) -> Any:
        values = jax.vmap(one, in_axes=(0, 0, None))(samples, keys, arrays)
        values = values.astype(jnp.result_type(float))
        mean, sd = _mean_sd(values)
        q = jnp.quantile(values, jnp.asarray(levels), axis=0) if levels and on_device else None
        return mean, sd, q, values if return_draws or (levels and not on_device) else None

    return chunk  # type: ignore[no-any-return]


def _mean_sd(values: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and sd over axis 0, summed draw by draw in a fixed order.

    An XLA reduction may sum in an order that depends on the array's shape; a sequential sum over
    draws gives every row the same result whichever chunk it is in.
    """

    def total(vals: jax.Array, center: jax.Array | None = None) -> jax.Array:
        def add(acc: jax.Array, v: jax.Array) -> tuple[jax.Array, None]:
            if center is not None:
                v = jax.lax.optimization_barrier(jnp.square(v - center))  # type: ignore[no-untyped-call]
            return acc + v, None

        return jax.lax.scan(add, jnp.zeros_like(vals[0]), vals)[0]

    mean = total(values) / values.shape[0]
    return mean, jnp.sqrt(total(values, mean) / values.shape[0])


def predict(
    model: ModelFn,
    posterior_samples: Mapping[str, Any],
    constants: Mapping[str, Any],
    site: str,
    data: Mapping[str, Any],
    *,
    kind: str = "response",
    num_samples: int | None = None,
    seed: int = 1,
    interval: float | None = None,
    quantiles: Sequence[float] | None = None,
    return_draws: bool = False,
    chunk_rows: int | None = None,
    data_signature: Mapping[str, tuple[tuple[int, ...], str]] | None = None,
) -> Predictions:
    """Posterior predictive summaries of ``site`` for the rows in ``data`` (see the module doc).

    ``data_signature`` (the training rows' trailing shapes and dtype kinds, see
    :func:`~blayers_core.engine.data.data_signature`) is checked before anything is traced.

    Raises:
        ValueError: a bad ``kind``, ``num_samples``, ``interval``, ``quantiles`` or ``chunk_rows``.
        DataError: row arrays of different lengths, none at all, with unusable values, or unlike
            the training rows (another number of columns, floats for integer codes).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be 'mean' or 'response', got {kind!r}")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}")
    levels = quantile_levels(interval, quantiles)
    samples = {k: jnp.asarray(v) for k, v in posterior_samples.items()}
    available = next(iter(samples.values())).shape[0] if samples else 1
    if num_samples is not None:
        if not isinstance(num_samples, int | np.integer) or not 1 <= num_samples <= available:
            raise ValueError(
                f"num_samples must be an int between 1 and {available} (the posterior draws kept "
                f"by fit), got {num_samples!r}"
            )
        samples = {k: v[:num_samples] for k, v in samples.items()}
    num_draws = available if num_samples is None else int(num_samples)
    new = split_prediction_data(data)
    if data_signature is not None:
        check_data_signature(data_signature, new.rows)
    all_constants = {**constants, **new.constants}
    dry_run(model, new.rows, all_constants, seed=int(seed))  # bad input raises before tracing
    if chunk_rows is None:
        chunk_rows = max(1, CHUNK_ELEMENTS // num_draws)
    elif isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int | np.integer):
        raise ValueError(f"chunk_rows must be a positive int, got {chunk_rows!r}")
    elif chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive int, got {chunk_rows!r}")

    on_device = jax.default_backend() != "cpu"
    base_key = jax.random.PRNGKey(int(seed))

    def chunk_key(index: int) -> Array:
        return jax.random.split(jax.random.fold_in(base_key, index), num_draws)

    parts: list[tuple[Any, ...]] = []
    for chunk in evaluate_in_chunks(
        ("predict", model, site, kind, levels, bool(return_draws), on_device),
        lambda static: _chunk_program(
            model, site, kind, levels, bool(return_draws), on_device, static
        ),
        new.rows,
        all_constants,
        chunk_rows=int(chunk_rows),
        chunk_key=chunk_key,
        operands=samples,
        row_axes=_ROW_AXES,
    ):
        mean, sd, q, d = chunk.value
        if levels and q is None:  # on the CPU: NumPy's selection, on the rows kept
            q = np.quantile(d, levels, axis=0).astype(d.dtype)
            d = d if return_draws else None
        parts.append((mean, sd, q, d))
    mean, sd, q_values, draws = join_chunks(parts, _ROW_AXES)
    return Predictions(
        site=site,
        mean=mean,
        sd=sd,
        draws=draws,
        kind=kind,
        quantile_levels=levels,
        quantiles=np.zeros((0, *mean.shape)) if q_values is None else q_values,
    )


def join_predictions(parts: Sequence[Predictions]) -> Predictions:
    """Predictions of consecutive pieces of rows, joined in order along the rows."""
    first = parts[0]
    draws = None if first.draws is None else np.concatenate([p.draws for p in parts], axis=1)  # type: ignore[misc]
    return Predictions(
        site=first.site,
        mean=np.concatenate([p.mean for p in parts]),
        sd=np.concatenate([p.sd for p in parts]),
        draws=draws,
        kind=first.kind,
        quantile_levels=first.quantile_levels,
        quantiles=np.concatenate([p.quantiles for p in parts], axis=1)
        if first.quantile_levels
        else first.quantiles,
    )
