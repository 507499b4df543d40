"""The checks of a loss: NumPyro's ELBO contract, ``loss.loss(rng_key, params, model, guide,
*args)`` is the scalar to minimise; a minibatch loss rescales by ``num_obs``."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from blayers_core.contract.protocols import Loss, MinibatchLoss
from blayers_core.testing._candidate import Candidate
from blayers_core.testing._config import require_bad_config_rejected
from blayers_core.testing._docs import require_docstring
from blayers_core.testing._fitting import BATCH_SIZE, short_fit
from blayers_core.testing._harness import SkipCheck, close, key
from blayers_core.testing._tiny import TINY_PARAMS, TINY_Y, tiny_guide, tiny_model

#: The rows a loss is evaluated on.
BATCH = TINY_Y[:BATCH_SIZE]


def _ready(loss: Any, num_obs: int = BATCH_SIZE) -> Any:
    """``loss``, told ``num_obs`` first when it is a minibatch loss without one."""
    if isinstance(loss, MinibatchLoss) and loss.num_obs is None:
        return loss.with_num_obs(num_obs)
    return loss


def _value(loss: Any, seed: int = 0) -> Any:
    return loss.loss(key(seed), TINY_PARAMS, tiny_model, tiny_guide, BATCH)


def check_loss_satisfies_the_protocol(candidate: Candidate) -> None:
    """``loss(rng_key, params, model, guide, *args)``; a minibatch loss also has ``num_obs`` and
    ``with_num_obs``."""
    built = candidate.build()
    if not isinstance(built, Loss):
        raise AssertionError(f"the factory built {built!r}, which has no loss() method")
    try:
        inspect.signature(built.loss).bind(key(), TINY_PARAMS, tiny_model, tiny_guide, BATCH)
    except TypeError as exc:
        raise AssertionError(
            f"loss{inspect.signature(built.loss)} does not accept (rng_key, params, model, guide, "
            f"*args): {exc}"
        ) from None
    except ValueError:
        pass  # no signature to inspect
    halfway = hasattr(built, "num_obs") or hasattr(built, "with_num_obs")
    if halfway and not isinstance(built, MinibatchLoss):
        raise AssertionError(
            "the loss has num_obs or with_num_obs but not both; a minibatch loss needs both"
        )


def check_loss_returns_a_finite_scalar(candidate: Candidate) -> None:
    """On a tiny model and guide the loss is a finite scalar."""
    value = _value(_ready(candidate.build()))
    shape = tuple(np.shape(value))
    if shape != ():
        raise AssertionError(f"loss.loss(...) returned shape {shape}; it must be a scalar")
    if not np.isfinite(float(value)):
        raise AssertionError(f"loss.loss(...) returned {float(value)}, not a finite number")


def check_loss_is_deterministic(candidate: Candidate) -> None:
    """Two evaluations under the same key give the same value."""
    first = _value(_ready(candidate.build()))
    second = _value(_ready(candidate.build()))
    if not np.array_equal(np.asarray(first), np.asarray(second), equal_nan=True):
        raise AssertionError(
            f"two evaluations under the same PRNG key gave {first} and {second}; draw "
            "randomness only from the rng_key"
        )


def check_loss_scales_with_num_obs(candidate: Candidate) -> None:
    """A minibatch loss: ``with_num_obs`` returns a new loss, the original is unchanged, and the
    observed part grows linearly with ``num_obs``."""
    built = candidate.build()
    if not isinstance(built, MinibatchLoss):
        raise SkipCheck("not a minibatch loss (no num_obs and with_num_obs)")
    before = built.num_obs
    values = []
    for num_obs in (BATCH_SIZE, 2 * BATCH_SIZE, 3 * BATCH_SIZE):
        scaled = built.with_num_obs(num_obs)
        if not isinstance(scaled, MinibatchLoss) or scaled.num_obs != num_obs:
            raise AssertionError(
                f"with_num_obs({num_obs}) returned {scaled!r}, not a minibatch loss with "
                f"num_obs={num_obs}"
            )
        values.append(float(_value(scaled)))
    if built.num_obs != before:
        raise AssertionError("with_num_obs changed the loss it was called on; return a new one")
    step, next_step = values[1] - values[0], values[2] - values[1]
    if step == 0 or not close(step, next_step, atol=1e-4 * max(1.0, abs(values[0]))):
        raise AssertionError(
            f"with num_obs = {BATCH_SIZE}, {2 * BATCH_SIZE}, {3 * BATCH_SIZE} on a batch of "
            f"{BATCH_SIZE} rows the loss is {values}; the observed log-likelihood should be "
            "scaled by num_obs / rows, so the values should change by equal, non-zero steps"
        )


def check_loss_trains_in_a_short_fit(candidate: Candidate) -> None:
    """``fit`` with this loss (minibatches for a minibatch loss) gives finite losses."""
    built = candidate.build()
    batch = BATCH_SIZE if isinstance(built, MinibatchLoss) else None
    short_fit(tiny_model, {"y": TINY_Y}, loss=built, batch_size=batch)


def check_loss_has_a_docstring(candidate: Candidate) -> None:
    """The factory has a docstring (its first line is the registry's description)."""
    require_docstring(candidate)


def check_loss_rejects_bad_config(candidate: Candidate) -> None:
    """Bad constructor arguments raise, naming the argument (attrs classes; see the kit)."""
    require_bad_config_rejected(candidate)
