"""Figures of a fit: the loss curve and a forest plot of the coefficients with intervals.

matplotlib is optional (``pip install "blayers-core[plots]"``) and imported when a plot is made. The
forest plot is drawn by ArviZ's ``plot_forest`` (highest-density intervals) when ArviZ 0.x is
installed, and by matplotlib (central quantile intervals) otherwise or with ``backend="matplotlib"``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from blayers_core.results.summary import element_labels, percent_label, select_sites, summarize

if TYPE_CHECKING:
    from blayers_core.api.result import FitResult

#: More forest rows than this need an explicit ``sites=`` (a forest of 10 000 rows is unreadable).
MAX_FOREST_ROWS = 200
INSTALL_HINT = 'pip install "blayers-core[plots]"'


def pyplot() -> Any:
    """``matplotlib.pyplot``, or an ImportError that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            f"plots need matplotlib, an optional dependency: {INSTALL_HINT}"
        ) from error
    return plt


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` values (shorter at the start)."""
    cumulative = np.cumsum(np.insert(np.asarray(values, dtype=np.float64), 0, 0.0))
    index = np.arange(1, len(values) + 1)
    start = np.maximum(index - window, 0)
    return (cumulative[index] - cumulative[start]) / (index - start)  # type: ignore[no-any-return]


def plot_loss(result: FitResult, ax: Any = None, *, window: int | None = None) -> Any:
    """The loss at every step (faint) and its moving average (``window`` steps, default 1/50 of
    the run); log scale when every loss is positive. Returns the axes."""
    losses = np.asarray(result.losses, dtype=np.float64)
    if losses.size == 0:
        raise ValueError(
            f"this {result.method!r} fit has no loss history to plot (NUTS has none); "
            "use plot_forest"
        )
    if window is None:
        window = max(1, losses.size // 50)
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    plt = pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    steps = np.arange(1, losses.size + 1)
    ax.plot(steps, losses, lw=0.5, alpha=0.35, color="tab:blue", label="loss at each step")
    ax.plot(
        steps, smooth(losses, window), lw=1.5, color="tab:blue", label=f"mean of {window} steps"
    )
    if np.all(losses > 0):
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="loss (negative ELBO)", title="Training loss")
    ax.legend(loc="upper right", frameon=False)
    return ax


def _forest_rows(
    result: FitResult, sites: Sequence[str], labels: Mapping[str, Sequence[str]]
) -> list[str]:
    rows = []
    for site in sites:
        shape = np.shape(result.posterior_samples[site])[1:]
        names = labels.get(site)
        size = int(np.prod(shape, dtype=int))
        if names is None:
            rows += element_labels(site, shape)
        elif len(names) != size:
            raise ValueError(
                f"labels[{site!r}] has {len(names)} names but the site has {size} elements "
                f"(shape {tuple(shape)})"
            )
        else:
            rows += [str(n) for n in names]
    return rows


def _default_sites(result: FitResult) -> list[str]:
    sizes = {
        k: int(np.prod(np.shape(v)[1:], dtype=int)) for k, v in result.posterior_samples.items()
    }
    if sum(sizes.values()) > MAX_FOREST_ROWS:
        raise ValueError(
            f"the fit has {sum(sizes.values())} latent elements, too many for one forest plot "
            f"(more than {MAX_FOREST_ROWS}); choose sites= among {sizes}"
        )
    return sorted(sizes)


def plot_forest(
    result: FitResult,
    sites: Sequence[str] | None = None,
    ax: Any = None,
    *,
    interval: float = 0.9,
    labels: Mapping[str, Sequence[str]] | None = None,
    backend: str = "auto",
) -> Any:
    """Posterior mean (point) and ``interval`` (line) of every element of ``sites``, one row each.

    Args:
        result: the fit.
        sites: the latent sites to show (default: all, when they have at most 200 elements).
        ax: matplotlib axes to draw on (default: a new figure).
        interval: the interval's probability.
        labels: names of a site's elements, e.g. ``{"beta/beta": feature_names}``.
        backend: ``"auto"`` (ArviZ 0.x when installed, else matplotlib), ``"arviz"`` or
            ``"matplotlib"``.

    Returns the axes; rows run top to bottom in the order of ``sites``.
    """
    if backend not in ("auto", "arviz", "matplotlib"):
        raise ValueError(f"backend must be 'auto', 'arviz' or 'matplotlib', got {backend!r}")
    chosen = (
        _default_sites(result) if sites is None else select_sites(result.posterior_samples, sites)
    )
    names = _forest_rows(result, chosen, dict(labels or {}))
    table = summarize(result.posterior_samples, interval=interval, sites=chosen)
    plt = pyplot()
    if backend != "matplotlib" and _arviz_forest_available(backend):
        return _arviz_forest(result, chosen, names, ax, interval)
    new_figure = ax is None
    if new_figure:
        _, ax = plt.subplots(figsize=(6, 1.0 + 0.3 * len(names)))
    lo, hi = percent_label((1 - interval) / 2), percent_label((1 + interval) / 2)
    position = np.arange(len(names))[::-1]
    mean = table["mean"].to_numpy()
    ax.hlines(position, table[lo].to_numpy(), table[hi].to_numpy(), color="tab:red", lw=1.5)
    ax.plot(mean, position, "o", color="tab:red", markersize=4)
    ax.axvline(0.0, color="grey", lw=0.8)
    ax.set_yticks(position, names)
    ax.set(
        xlabel="value",
        title=f"Posterior mean and {100 * interval:g}% interval",
        ylim=(-0.7, len(names) - 0.3),
    )
    if new_figure:
        ax.figure.tight_layout()
    return ax


def _arviz_forest_available(backend: str) -> bool:
    try:
        import arviz as az
    except ImportError:
        if backend == "arviz":
            raise ImportError(
                'backend="arviz" needs ArviZ, an optional dependency: pip install "blayers-core[arviz]"'
            ) from None
        return False
    if int(str(az.__version__).split(".")[0]) >= 1:  # 1.x plots through arviz-plots, without ax=
        if backend == "arviz":
            raise ValueError(
                f"backend='arviz' draws with ArviZ 0.x's plot_forest; ArviZ {az.__version__} is "
                "installed: use backend='matplotlib'"
            )
        return False
    return True


def _arviz_forest(
    result: FitResult, sites: list[str], names: list[str], ax: Any, interval: float
) -> Any:
    import arviz as az

    from blayers_core.io.arviz_export import variable_name

    data = result.to_arviz()
    axes = az.plot_forest(  # type: ignore[no-untyped-call]
        data,
        var_names=[variable_name(s) for s in sites],
        combined=True,
        hdi_prob=interval,
        ax=ax,
        figsize=(6, 1.0 + 0.3 * len(names)),
    )
    new_figure = ax is None
    ax = np.ravel(axes)[0]
    ax.set_yticks(ax.get_yticks(), names[::-1])
    ax.axvline(0.0, color="grey", lw=0.8)
    ax.set(xlabel="value", title=f"Posterior mean and {100 * interval:g}% HDI (ArviZ)")
    if new_figure:
        ax.figure.tight_layout()
    return ax


def plot_result(
    result: FitResult,
    path: str | os.PathLike[str] | None = None,
    *,
    sites: Sequence[str] | None = None,
    labels: Mapping[str, Sequence[str]] | None = None,
    interval: float = 0.9,
    backend: str = "auto",
    dpi: int = 120,
) -> Any:
    """One figure with the loss curve (VI fits) and the forest plot; written to ``path`` (any
    format matplotlib knows from the suffix) when given. Returns the figure."""
    plt = pyplot()
    chosen = _default_sites(result) if sites is None else list(sites)
    num_rows = sum(
        int(np.prod(np.shape(result.posterior_samples[s])[1:], dtype=int))
        for s in chosen
        if s in result.posterior_samples
    )
    height = max(4.0, 1.2 + 0.3 * num_rows)
    has_loss = np.asarray(result.losses).size > 0
    fig, axes = plt.subplots(1, 2 if has_loss else 1, figsize=(12 if has_loss else 6.5, height))
    axes = np.atleast_1d(axes)
    if has_loss:
        plot_loss(result, axes[0])
    plot_forest(result, chosen, axes[-1], interval=interval, labels=labels, backend=backend)
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), dpi=dpi)
    return fig
