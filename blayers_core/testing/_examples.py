"""Example data the checks feed a component: a layer's inputs, a link's predictor and target.

A component declares how to feed it with optional attributes, read from the built object; see
:mod:`blayers_core.testing` for the rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from numpyro import handlers
from numpyro.infer.util import log_density

from blayers_core.testing._candidate import Candidate, factory_name

#: Columns of a dense input when the layer does not declare ``example_columns``.
DENSE_COLUMNS = 3
#: Dense inputs are drawn uniformly from this interval.
DENSE_RANGE = (-1.0, 1.0)
#: Columns of a link's predictor when the link does not declare ``example_units``.
PREDICTOR_UNITS = 1
#: How many draws of the link are tried for a target the link accepts when observed.
TARGET_TRIES = 8


def rng_for(n: int, salt: int = 0) -> np.random.Generator:
    """The fixed generator the kit draws ``n`` rows of example data from."""
    return np.random.default_rng([n, salt])


# ------------------------------------------------------------------------------------ layers
def _categories(layer: Any, name: str) -> int | Sequence[int] | None:
    """Category counts of input ``name`` when it holds integer codes, else ``None``."""
    own = getattr(layer, f"{name}_num_categories", None)
    if own is not None:
        return own  # type: ignore[no-any-return]
    if name in tuple(getattr(layer, "index_names", ("x",))):
        return getattr(layer, "num_categories", None)
    return None


def _codes(sizes: int | Sequence[int], n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, fields)`` int32 codes, field ``j`` in ``0..sizes[j]-1`` (one field for an int)."""
    counts = [int(sizes)] if isinstance(sizes, int | np.integer) else [int(s) for s in sizes]
    return np.stack([rng.integers(0, c, size=n) for c in counts], axis=1).astype(np.int32)


def default_layer_inputs(layer: Any, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """One input per name in ``layer.input_names`` (default ``("x",)``), for ``n`` rows.

    * codes ``(n, f)`` when the layer has ``<name>_num_categories``, or ``num_categories`` and
      ``name`` is in ``index_names`` (default ``("x",)``), not ``None``;
    * weights in ``[0.5, 1.5)`` of the codes' shape for a name ending in ``values`` that follows
      codes;
    * otherwise a dense float32 matrix ``(n, example_columns)`` (default 3 columns) in
      ``[-1, 1]``.
    """
    names = tuple(getattr(layer, "input_names", ("x",)))
    columns = int(getattr(layer, "example_columns", DENSE_COLUMNS))
    inputs: list[np.ndarray] = []
    codes: np.ndarray | None = None
    for name in names:
        sizes = _categories(layer, name)
        if sizes is not None:
            codes = _codes(sizes, n, rng)
            inputs.append(codes)
        elif name.endswith("values") and codes is not None:
            inputs.append(rng.uniform(0.5, 1.5, size=codes.shape).astype(np.float32))
        else:
            inputs.append(rng.uniform(*DENSE_RANGE, size=(n, columns)).astype(np.float32))
    return tuple(inputs)


def layer_inputs(candidate: Candidate, layer: Any, n: int, salt: int = 0) -> tuple[Any, ...]:
    """The inputs the checks call ``layer`` with: ``candidate.inputs``, the layer's
    ``example_inputs(n, rng)``, or :func:`default_layer_inputs`."""
    rng = rng_for(n, salt)
    if candidate.inputs is not None:
        return tuple(candidate.inputs(n, rng))
    declared = getattr(layer, "example_inputs", None)
    if callable(declared):
        return tuple(declared(n, rng))
    return default_layer_inputs(layer, n, rng)


# ------------------------------------------------------------------------------------- links
def predictor(link: Any, n: int, salt: int = 0) -> np.ndarray:
    """A float32 predictor ``(n, example_units)`` (default one column) of small values."""
    units = int(getattr(link, "example_units", PREDICTOR_UNITS))
    return (0.3 * rng_for(n, salt + 1).normal(size=(n, units))).astype(np.float32)


def _accepts(link: Any, mu: Any, y: Any) -> bool:
    """Whether ``link(mu, y)`` runs and has a finite log density."""
    try:
        model = handlers.seed(link, rng_seed=0)
        value, _ = log_density(model, (mu, y), {}, {})
    except Exception:
        return False
    return bool(np.isfinite(float(value)))


def link_target(candidate: Candidate, link: Any, mu: np.ndarray, salt: int = 0) -> Any:
    """``n = len(mu)`` observed values: ``candidate.target``, the link's ``example_target(n,
    rng)``, or the first of a few draws ``link(mu)`` (fixed keys) that ``link(mu, y)`` accepts.

    Raises:
        AssertionError: when no draw is accepted.
    """
    n = int(np.shape(mu)[0])
    rng = rng_for(n, salt + 2)
    if candidate.target is not None:
        return candidate.target(n, rng)
    declared = getattr(link, "example_target", None)
    if callable(declared):
        return declared(n, rng)
    for attempt in range(TARGET_TRIES):
        draw = handlers.seed(link, rng_seed=jax.random.PRNGKey(attempt))(mu)
        y = np.asarray(draw)
        if _accepts(link, mu, y):
            return y
    raise AssertionError(
        f"no draw of {factory_name(link)}(mu) with y=None, in {TARGET_TRIES} tries, has a finite "
        "log density when observed; give the link an example_target(n, rng) or pass target="
    )
