"""Helpers shared by the tests: hand-written NumPyro comparisons, fake installed plugins."""

from __future__ import annotations

import functools
import logging
import textwrap
import uuid
from pathlib import Path

import jax
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer.util import log_density

from blayers_core import Registry
from blayers_core.plugin import PLUGIN_API_VERSION


def trace(fn, seed: int = 0):
    """The trace of ``fn()`` run once under ``seed``."""
    return handlers.trace(handlers.seed(fn, rng_seed=seed)).get_trace()


def assert_same_log_joint(model, reference, params, *args) -> float:
    """``model`` and the hand-written ``reference`` have the same log joint at ``params``."""
    lp_model, _ = log_density(model, args, {}, params)
    lp_ref, _ = log_density(reference, args, {}, params)
    assert np.isfinite(float(lp_ref))
    np.testing.assert_allclose(float(lp_model), float(lp_ref), rtol=1e-5)
    return float(lp_model)


def positive(rng, shape):
    """Random values in ``[0.5, 2)``: a valid value for a scale site."""
    return rng.uniform(0.5, 2.0, size=shape).astype(np.float32)


def real(rng, shape):
    """Standard normal values: a valid value for a real site."""
    return rng.normal(size=shape).astype(np.float32)


def run_with(fn, *, data=None, seed: int = 0):
    """Call ``fn()`` with the sites in ``data`` fixed and the rest drawn under ``seed``."""
    from numpyro import handlers as _handlers

    fn = _handlers.seed(fn, rng_seed=seed)
    if data:
        fn = _handlers.substitute(fn, data=data)
    return fn()


def site_summary(result, site: str, column: str = "mean") -> np.ndarray:
    """One column of ``result.summary()`` for the elements of ``site``, flattened in C order."""
    table = result.summary(sites=[site])
    assert len(table) == np.prod(np.shape(result.posterior_samples[site])[1:], dtype=int)
    return table[column].to_numpy()


# ----------------------------------------------------------------------------- fitted results
S, N, D = 200, 37, 3


def linear_model(link_name: str):
    """``y ~ link(x @ beta)`` with ``beta ~ Normal(0, 1)`` at site ``mu/beta``, by name."""
    from blayers_core import layer, link

    linear, likelihood = layer("fixed_prior"), link(link_name)

    def model(x, y=None):
        return likelihood(linear("mu", x), y)

    return model


@functools.cache
def hand_result(link_name: str, seed: int = 0):
    """A FitResult of :func:`linear_model` with hand-made posterior draws (``S`` of them) of
    ``mu/beta`` (and ``obs/sigma`` for the gaussian link), so expected values follow by hand."""
    from blayers_core import FitResult

    rng = np.random.default_rng(seed)
    samples = {"mu/beta": (0.3 * rng.normal(size=(S, D, 1)) + 0.5).astype(np.float32)}
    if link_name == "gaussian":
        samples["obs/sigma"] = rng.uniform(0.5, 1.5, size=S).astype(np.float32)
    return FitResult(
        model=linear_model(link_name),
        guide=None,
        params={},
        losses=np.zeros(0),
        posterior_samples=samples,
        observed_sites=("obs",),
        constants={},
        num_rows=N,
    )


def features(n: int = N, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32)


class FakeSite:
    """Writes fake installed distributions (dist-info + module) into one folder."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        monkeypatch.syspath_prepend(str(root))

    def add(
        self,
        dist: str,
        plugins: dict[str, str],
        version: str = "1.0",
        *,
        api: object = PLUGIN_API_VERSION,
        site_dir: Path | None = None,
    ) -> dict[str, str]:
        """Install ``dist`` with one entry point per plugin; returns plugin -> module name.

        Each module ends with ``BLAYERS_PLUGIN_API = <api>``, or declares nothing if ``api`` is
        None. ``site_dir`` puts the dist-info in another folder (the module stays importable).
        """
        modules = {}
        lines = ["[blayers.plugins]"]
        for plugin, source in plugins.items():
            module = f"fake_{plugin}_{uuid.uuid4().hex[:8]}"  # fresh: sys.modules caches imports
            text = textwrap.dedent(source)
            if api is not None:
                text += f"\nBLAYERS_PLUGIN_API = {api!r}\n"
            (self.root / f"{module}.py").write_text(text)
            lines.append(f"{plugin} = {module}")
            modules[plugin] = module
        info = (site_dir or self.root) / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        return modules

    def add_first_party(self) -> None:
        info = self.root / "blayers_core-0.1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: blayers-core\nVersion: 0.1.0\n"
        )
        (info / "entry_points.txt").write_text("[blayers.plugins]\nblayers = blayers_plugins\n")

    def registry(self, environ: dict[str, str] | None = None) -> Registry:
        return Registry(search_path=[str(self.root)], environ=environ or {})


class _CompileLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "compil" in record.getMessage().lower():
            self.messages.append(record.getMessage())


def compilations(fn) -> list[str]:
    """What JAX compiled while ``fn()`` ran (its ``log_compiles`` messages)."""
    log = _CompileLog()
    logger = logging.getLogger("jax")
    logger.addHandler(log)
    try:
        with jax.log_compiles(True):
            fn()
    finally:
        logger.removeHandler(log)
    return log.messages
