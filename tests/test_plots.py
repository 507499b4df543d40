"""Plots: the files are written and the axes hold one row per coefficient, in order."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers import D, hand_result

import blayers_core
from blayers_core import plot_forest, plot_loss, plot_result

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def with_losses(result, losses):
    import attrs

    return attrs.evolve(result, losses=np.asarray(losses, dtype=np.float32), steps_done=len(losses))


def test_loss_curve_has_the_raw_and_the_smoothed_losses():
    losses = 100.0 * np.exp(-np.arange(500) / 100.0) + 5.0
    ax = plot_loss(with_losses(hand_result("gaussian"), losses))
    raw, smoothed = ax.get_lines()
    np.testing.assert_allclose(raw.get_ydata(), losses, rtol=1e-6)
    assert len(smoothed.get_ydata()) == 500 and ax.get_yscale() == "log"
    # a window of 10 steps: the smoothed value is the mean of the last 10 losses
    np.testing.assert_allclose(smoothed.get_ydata()[-1], losses[-10:].mean(), rtol=1e-6)
    assert ax.get_xlabel() == "step" and "ELBO" in ax.get_ylabel()
    negative = plot_loss(with_losses(hand_result("gaussian"), losses - 50.0))
    assert negative.get_yscale() == "linear"
    with pytest.raises(ValueError, match="no loss history"):
        plot_loss(hand_result("gaussian"))


def test_matplotlib_forest_has_one_row_per_coefficient_with_its_interval():
    result = hand_result("gaussian")
    names = ["age", "bmi", "bp"]
    ax = plot_forest(result, ["mu/beta"], labels={"mu/beta": names}, backend="matplotlib")
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    points = ax.get_lines()[0]
    beta = np.asarray(result.posterior_samples["mu/beta"], dtype=np.float64)[:, :, 0]
    np.testing.assert_allclose(points.get_xdata(), beta.mean(0), rtol=1e-6)
    np.testing.assert_array_equal(points.get_ydata(), [2, 1, 0])  # first name on top
    segments = ax.collections[0].get_segments()
    lows = [s[0][0] for s in segments]
    np.testing.assert_allclose(lows, np.quantile(beta, 0.05, axis=0), rtol=1e-6)
    with pytest.raises(ValueError, match=r"labels\['mu/beta'\] has 2 names but the site has 3"):
        plot_forest(result, ["mu/beta"], labels={"mu/beta": names[:2]}, backend="matplotlib")
    with pytest.raises(ValueError, match="backend must be"):
        plot_forest(result, backend="seaborn")


def test_arviz_forest_is_used_when_arviz_0_is_installed():
    az = pytest.importorskip("arviz")
    if int(az.__version__.split(".")[0]) >= 1:
        pytest.skip("ArviZ 1.x: the forest plot is drawn with matplotlib")
    ax = plot_forest(hand_result("gaussian"), labels={"mu/beta": ["a", "b", "c"]})
    assert "ArviZ" in ax.get_title()
    assert [t.get_text() for t in ax.get_yticklabels()][::-1] == ["a", "b", "c", "obs/sigma"]


def test_plot_writes_a_file_with_both_panels(tmp_path):
    losses = np.linspace(10.0, 1.0, 200)
    result = with_losses(hand_result("gaussian"), losses)
    fig = result.plot(tmp_path / "fit.png", backend="matplotlib")
    assert (tmp_path / "fit.png").stat().st_size > 10_000
    loss_ax, forest_ax = fig.axes
    assert loss_ax.get_title() == "Training loss"
    assert len(forest_ax.get_yticklabels()) == D + 1
    # without a loss history (NUTS), the figure is the forest alone
    fig = plot_result(hand_result("gaussian"), tmp_path / "forest.pdf", backend="matplotlib")
    assert len(fig.axes) == 1 and (tmp_path / "forest.pdf").exists()


def test_plots_without_matplotlib_say_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r'pip install "blayers-core\[plots\]"'):
        blayers_core.plot_forest(hand_result("gaussian"), backend="matplotlib")
