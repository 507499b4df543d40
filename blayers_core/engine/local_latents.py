"""Refuse per-row (local) latent variables when training on minibatches.

A latent site whose shape follows the number of rows ``n`` (a ``z`` inside
``numpyro.plate("rows", n)``, or ``Normal(0, 1).expand([x.shape[0]])``) is one latent per row. A
training step sees a batch of ``B < n`` rows, so the guide would hold ``B`` values, shared by the
rows of every batch, and the posterior would have ``B`` entries instead of one per row: a silently
wrong answer. Supporting it needs amortised or row-indexed guides, so ``fit`` refuses it before
training instead.

A site is *row-dependent* when its shape (or the size of a plate around it) changes with the
number of rows while the constants stay the same: the model is traced at two row counts and the
shapes compared. A global parameter whose length happens to equal ``n`` (``n`` features, say)
keeps its shape and is not flagged. The second trace is abstract (:func:`jax.eval_shape`): it
computes shapes only and compiles nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import jax
import numpy as np
from numpyro import handlers

from blayers_core.contract._typing import Array, ModelFn


@attrs.frozen
class SiteShape:
    """The shape of one latent sample site and the plates around it (``(name, size)``)."""

    name: str
    shape: tuple[int, ...]
    plates: tuple[tuple[str, int], ...]


@attrs.frozen
class ShapeProbe:
    """The latent sites of one trace of the model over ``num_rows`` rows."""

    num_rows: int
    sites: tuple[SiteShape, ...]


def latent_shapes(model_trace: Mapping[str, Any]) -> tuple[SiteShape, ...]:
    """The latent (not observed) sample sites of a NumPyro trace, with their shapes and plates."""
    return tuple(
        SiteShape(
            name,
            tuple(int(d) for d in np.shape(site["value"])),
            tuple((frame.name, int(frame.size)) for frame in site["cond_indep_stack"]),
        )
        for name, site in model_trace.items()
        if site["type"] == "sample" and not site["is_observed"]
    )


def probe_shapes(
    model: ModelFn,
    rows: Mapping[str, Any],
    array_constants: Mapping[str, Any],
    static_constants: Mapping[str, Any],
    num_rows: int,
    key: Array,
) -> ShapeProbe:
    """The latent sites of ``model`` traced abstractly on ``num_rows`` rows of ``rows``' layout.

    Only shapes are computed (no values, no compilation); value checks of layers are skipped.
    """
    found: list[tuple[SiteShape, ...]] = []

    def traced(rows: dict[str, Any], arrays: dict[str, Any], rng_key: Array) -> None:
        seeded = handlers.seed(model, rng_seed=rng_key)
        found.append(latent_shapes(handlers.trace(seeded).get_trace(**rows, **arrays, **static)))

    static = dict(static_constants)
    struct: Any = jax.ShapeDtypeStruct
    layout = {
        k: struct((num_rows, *np.shape(v)[1:]), jax.dtypes.canonicalize_dtype(v.dtype))
        for k, v in rows.items()
    }
    jax.eval_shape(traced, layout, dict(array_constants), key)
    return ShapeProbe(num_rows, found[-1])


def row_dependent_sites(first: ShapeProbe, second: ShapeProbe) -> list[tuple[SiteShape, SiteShape]]:
    """Latent sites whose shape or plate sizes differ between traces at two row counts, as
    ``(site in first, site in second)`` pairs in the order the model met them."""
    other = {site.name: site for site in second.sites}
    return [
        (site, other[site.name])
        for site in first.sites
        if site.name in other
        and (site.shape != other[site.name].shape or site.plates != other[site.name].plates)
    ]


def check_no_local_latents(whole: ShapeProbe, batch: ShapeProbe, num_rows: int) -> None:
    """Raise when a latent site scales with the rows while training on batches of
    ``batch.num_rows`` of the ``num_rows`` rows (``whole`` is a trace over more rows).

    Raises:
        ValueError: naming the site, its shapes at both row counts, the data plate around it and
            how to write the model instead.
    """
    found = row_dependent_sites(whole, batch)
    if not found:
        return
    site, small = found[0]
    plates = [f"{p!r} of size {s}" for p, s in site.plates if (p, s) not in small.plates]
    where = f" inside plate {', '.join(plates)}" if plates else ""
    others = [s.name for s, _ in found[1:]]
    also = f" (so do {', '.join(repr(o) for o in others)})" if others else ""
    raise ValueError(
        f"latent site {site.name!r}{where} has shape {site.shape} on {whole.num_rows} rows and "
        f"{small.shape} on a batch of {batch.num_rows} rows: its size follows the number of "
        f"rows, so it is a per-row (local) latent{also}. With batch_size={batch.num_rows} < "
        f"{num_rows} rows, training would learn {small.shape} values shared by the rows of every "
        "batch instead of one per row. Per-row latents are not supported with minibatches: fit "
        "with batch_size=None (full batch) or method='nuts', integrate the latent out of the "
        "likelihood, or make it a per-group effect indexed by integer codes "
        "(layer('random_effects', num_categories=...))."
    )
