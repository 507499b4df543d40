"""The plugin API, ``blayers_core.plugin``, as a third-party author meets it.

A layer and a link below are written the way a plugin would write them: only with names from
``blayers_core.plugin``, each class giving only its math. The base classes' final ``__call__`` must
then scope their sites, check their inputs and shapes, and draw ``y`` when it is not given. The
validators must name the argument they refuse. And plugins, first-party or example, must reach
``blayers_core`` only through this one module.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.distributions import Distribution
from numpyro.handlers import seed, trace

import blayers_core
from blayers_core import plugin
from blayers_core.plugin import (
    BaseLayer,
    BaseLink,
    boolean,
    loc_scale_family,
    positive_int,
    positive_number,
    positive_number_or_none,
    positive_prior,
    real_prior,
    site_name,
    unit_interval_prior,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SOURCES = [
    REPO_ROOT / "plugins" / "blayers_plugins",
    REPO_ROOT / "examples" / "robust_plugin" / "src",
    REPO_ROOT / "examples" / "plugin_template" / "src",
]


# ------------------------------------------------------------------- a third-party-style plugin
@attrs.frozen(kw_only=True)
class StudentTLayer(BaseLayer):
    """``x @ beta`` with ``beta ~ StudentT(df, 0, 1)``, ``(d, units)``: only the math."""

    df: float = attrs.field(default=3.0, validator=positive_number)

    def forward(self, x: jax.Array, *, units: int) -> jax.Array:
        prior = dist.StudentT(self.df).expand([x.shape[1], units]).to_event(2)
        beta: jax.Array = numpyro.sample("beta", prior)
        return x @ beta


@attrs.frozen(kw_only=True)
class BilinearLayer(BaseLayer):
    """``x^T W z`` with ``W ~ Normal(0, 1)``, ``(d_x, d_z, units)``: two named inputs."""

    input_names: ClassVar[tuple[str, ...]] = ("x", "z")

    def forward(self, x: jax.Array, z: jax.Array, *, units: int) -> jax.Array:
        shape = [x.shape[1], z.shape[1], units]
        w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand(shape).to_event(3))
        return jnp.einsum("ni,iju,nj->nu", x, w, z)


@attrs.frozen(kw_only=True)
class WrongShapeLayer(BaseLayer):
    """A buggy layer: it returns one column whatever ``units`` is."""

    def forward(self, x: jax.Array, *, units: int) -> jax.Array:
        return x[:, :1]


@attrs.frozen(kw_only=True)
class LaplaceLink(BaseLink):
    """``y ~ Laplace(mu, scale)`` with ``scale ~ HalfNormal(1)``; targets must be >= 0 (a test)."""

    name: str = attrs.field(default="obs", validator=site_name)

    def likelihood(self, mu: jax.Array) -> Distribution:
        return dist.Laplace(mu, numpyro.sample("scale", dist.HalfNormal(1.0)))

    def check_target(self, y: np.ndarray, mu_shape: tuple[int, ...]) -> None:
        if (y < 0).any():
            raise ValueError(f"{self.label}: y must be >= 0, got {y.min()}")


@attrs.frozen(kw_only=True)
class CountLink(BaseLink):
    """Poisson counts: observed values are cast to ``int32``."""

    target_dtype: ClassVar[Any] = jnp.int32
    name: str = attrs.field(default="obs", validator=site_name)

    def likelihood(self, mu: jax.Array) -> Distribution:
        return dist.Poisson(jnp.exp(mu))


@attrs.frozen(kw_only=True)
class OneValueLink(BaseLink):
    """A buggy link: its likelihood has no row dimension."""

    name: str = attrs.field(default="obs", validator=site_name)

    def likelihood(self, mu: jax.Array) -> Distribution:
        return dist.Normal(jnp.mean(mu), 1.0)


def _sites(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    tr = trace(seed(fn, 0)).get_trace(*args, **kwargs)
    return {name: site for name, site in tr.items() if site["type"] == "sample"}


X = np.arange(12.0).reshape(4, 3) / 10
Z = np.ones((4, 2))
Y = np.array([0.0, 1.0, 2.0, 3.0])


# -------------------------------------------------------------------------------------- layers
def test_layer_sites_are_scoped_under_the_call_name_and_names_do_not_collide() -> None:
    layer = StudentTLayer()

    def model() -> jax.Array:
        return layer("a", X) + layer("b", X)

    sites = _sites(model)
    assert set(sites) == {"a/beta", "b/beta"}
    assert sites["a/beta"]["value"].shape == (3, 1)


def test_layer_returns_n_by_units_and_applies_the_activation() -> None:
    with seed(rng_seed=0):
        out = StudentTLayer()("mu", X, units=2, activation=jnp.exp)
    assert out.shape == (4, 2)
    assert bool(jnp.all(out > 0))


def test_layer_with_two_inputs_and_the_short_call_form() -> None:
    with seed(rng_seed=0):
        out = BilinearLayer("xz", X, Z, units=3)  # BilinearLayer()("xz", X, Z, units=3)
    assert out.shape == (4, 3)
    assert set(_sites(lambda: BilinearLayer()("xz", X, Z))) == {"xz/w"}


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: StudentTLayer()("mu", X[:, 0]), ValueError, r"x must be a 2-D.*x\[:, None\]"),
        (lambda: StudentTLayer()("", X), TypeError, "site name"),
        (lambda: StudentTLayer()("mu", X, units=0), ValueError, "units must be a positive int"),
        (lambda: StudentTLayer()("mu", X, Z), TypeError, r"takes inputs \(x\), got 2"),
        (lambda: BilinearLayer()("xz", X, Z[:3]), ValueError, "different numbers of rows"),
        (lambda: BilinearLayer()("xz", X, Z[:, 0]), ValueError, "'xz': z must be a 2-D"),
    ],
)
def test_layer_input_checks_name_the_layer_and_argument(call: Any, error: type, match: str) -> None:
    with seed(rng_seed=0), pytest.raises(error, match=match):
        call()


def test_layer_output_of_the_wrong_shape_is_caught() -> None:
    with seed(rng_seed=0), pytest.raises(AssertionError, match=r"returned \(4, 1\), not \(4, 2\)"):
        WrongShapeLayer()("mu", X, units=2)


# --------------------------------------------------------------------------------------- links
def test_link_observes_y_and_scopes_its_auxiliary_sites() -> None:
    sites = _sites(lambda: LaplaceLink(name="y")(X[:, :1], Y))
    assert set(sites) == {"y/scale", "y"}
    assert sites["y"]["is_observed"]
    np.testing.assert_array_equal(sites["y"]["value"], Y)


def test_link_with_y_none_draws_one_value_per_row() -> None:
    for mu in (np.zeros(4), np.zeros((4, 1))):  # an (n, 1) predictor draws (n,), like (n,)
        sites = _sites(lambda mu=mu: LaplaceLink()(mu))
        assert not sites["obs"]["is_observed"]
        assert sites["obs"]["value"].shape == (4,)


@pytest.mark.parametrize(
    ("mu", "y", "match"),
    [
        (
            np.zeros((4, 1)),
            np.zeros(3),
            r"y has shape \(3,\) but the predictor mu has shape \(4,\)",
        ),
        (
            np.zeros((4, 2)),
            np.zeros(4),
            r"y has shape \(4,\) but the predictor mu has shape \(4, 2\)",
        ),
        (np.zeros(4), np.zeros((4, 1)), "never broadcasts"),
        (np.float32(1.0), None, "one value per row"),
    ],
)
def test_link_shape_mismatches_raise_instead_of_broadcasting(mu: Any, y: Any, match: str) -> None:
    with seed(rng_seed=0), pytest.raises(ValueError, match=match):
        LaplaceLink()(mu, y)


def test_link_checks_target_values_and_casts_them() -> None:
    with seed(rng_seed=0), pytest.raises(ValueError, match=r"link 'obs' \(LaplaceLink\): y must"):
        LaplaceLink()(np.zeros(4), -Y)
    sites = _sites(lambda: CountLink()(np.zeros(4), Y))
    assert sites["obs"]["value"].dtype == jnp.int32


def test_link_likelihood_without_rows_is_caught() -> None:
    for y in (Y, None):
        with seed(rng_seed=0), pytest.raises(AssertionError, match=r"OneValueLink\.likelihood"):
            OneValueLink()(np.zeros(4), y)


# ------------------------------------------------------------------------ abstract or final
def test_call_is_final_and_the_math_is_abstract() -> None:
    with pytest.raises(TypeError, match=r"__call__.*implement forward"):

        class OwnCall(BaseLayer):
            def forward(self, x: jax.Array, *, units: int) -> jax.Array:
                return x

            def __call__(self, name: str, x: Any) -> Any:
                return x

    with pytest.raises(TypeError, match=r"__call__.*implement likelihood"):

        class OwnLinkCall(BaseLink):
            def likelihood(self, mu: jax.Array) -> Distribution:
                return dist.Normal(mu, 1.0)

            def __call__(self, mu: Any, y: Any = None) -> Any:
                return mu

    class NoMath(BaseLayer):
        pass

    with pytest.raises(TypeError, match="abstract"):
        NoMath()


# ---------------------------------------------------------------------------------- validators
@attrs.frozen(kw_only=True)
class Configured:
    """Every validator on one attrs class, with valid defaults."""

    scale_prior: Any = attrs.field(factory=lambda: dist.HalfNormal(1.0), validator=positive_prior)
    coef_prior: Any = attrs.field(factory=lambda: dist.Normal(0.0, 1.0), validator=real_prior)
    gate_prior: Any = attrs.field(
        factory=lambda: dist.Beta(1.0, 1.0), validator=unit_interval_prior
    )
    coef_dist: Any = attrs.field(default=dist.Laplace, validator=loc_scale_family)
    rank: Any = attrs.field(default=np.int64(2), validator=positive_int)
    df: Any = attrs.field(default=np.float32(3.0), validator=positive_number)
    known_scale: Any = attrs.field(default=None, validator=positive_number_or_none)
    noncentered: Any = attrs.field(default=np.bool_(True), validator=boolean)
    name: Any = attrs.field(default="obs", validator=site_name)


@pytest.mark.parametrize(
    ("argument", "value", "error"),
    [
        ("scale_prior", dist.Normal(0.0, 1.0), ValueError),
        ("scale_prior", dist.HalfNormal(jnp.ones(2)), ValueError),
        ("scale_prior", 1.0, TypeError),
        ("coef_prior", dist.HalfNormal(1.0), ValueError),
        ("gate_prior", dist.Normal(0.0, 1.0), ValueError),
        ("coef_dist", dist.Normal(0.0, 1.0), TypeError),
        ("coef_dist", dist.StudentT, ValueError),
        ("rank", 0, ValueError),
        ("rank", True, ValueError),
        ("rank", 2.0, ValueError),
        ("df", math.inf, ValueError),
        ("df", -1, ValueError),
        ("df", None, ValueError),
        ("known_scale", 0.0, ValueError),
        ("noncentered", 1, TypeError),
        ("name", "obs/y", ValueError),
        ("name", "", ValueError),
    ],
)
def test_validators_refuse_bad_values_naming_the_argument(
    argument: str, value: Any, error: type
) -> None:
    with pytest.raises(error, match=f"^{argument} must be"):
        Configured(**{argument: value})


def test_validators_accept_good_values() -> None:
    Configured()
    Configured(known_scale=2, scale_prior=dist.Exponential(1.0), df=np.asarray(0.5))


# ------------------------------------------------------------------------------- the module
def test_all_lists_every_public_name_and_each_resolves() -> None:
    public = {
        name
        for name, value in vars(plugin).items()
        if not name.startswith("_") and not isinstance(value, ModuleType) and name != "annotations"
    }
    assert sorted(plugin.__all__) == sorted(set(plugin.__all__)), "duplicates in __all__"
    assert set(plugin.__all__) == public
    for name in plugin.__all__:
        assert getattr(plugin, name) is not None
    needed = {
        "PLUGIN_API_VERSION",
        "hookimpl",
        "Register",
        "BaseLayer",
        "BaseLink",
        "check_data",
        "layer_input",
        "align_to_target",
        "site_name",
        "positive_prior",
        "POPULATION_CODE",
        "population_codes_allowed",
        "multiply_scale",
    }
    assert needed <= public


def test_multiply_scale_is_the_same_function_from_the_root() -> None:
    assert blayers_core.multiply_scale is plugin.multiply_scale
    msg: dict[str, Any] = {"scale": 2.0}
    plugin.multiply_scale(msg, 3.0)
    assert msg["scale"] == 6.0
    assert msg["plate_to_scale"] == {None: 3.0}


def test_first_party_components_subclass_the_public_bases() -> None:
    from blayers_plugins.layers import LAYERS
    from blayers_plugins.links import LINKS

    assert all(issubclass(cls, BaseLayer) for cls in LAYERS.values()), LAYERS
    assert all(issubclass(cls, BaseLink) for cls in LINKS.values()), LINKS


# -------------------------------------------------------- plugins import only the plugin API
def blayers_core_imports(source: str) -> list[tuple[int, str]]:
    """``(line, import)`` of every import of ``blayers_core`` in ``source`` other than
    ``blayers_core.plugin`` (at any depth: in functions and ``TYPE_CHECKING`` blocks too)."""
    refused = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "blayers_core":
                modules = [f"blayers_core.{alias.name}" for alias in node.names]
            else:
                modules = [node.module]
        else:
            continue
        for module in modules:
            if module.split(".")[0] == "blayers_core" and module != "blayers_core.plugin":
                refused.append((node.lineno, module))
    return refused


def test_the_import_rule_refuses_the_root_and_private_modules() -> None:
    source = (
        "from blayers_core.plugin import BaseLayer\n"
        "from blayers_core import plugin\n"
        "import blayers_core.plugin\n"
        "from blayers_core import check_data\n"
        "import blayers_core\n"
        "def f():\n"
        "    from blayers_core.contract.shapes import layer_input\n"
    )
    assert blayers_core_imports(source) == [
        (4, "blayers_core.check_data"),
        (5, "blayers_core"),
        (7, "blayers_core.contract.shapes"),
    ]


@pytest.mark.parametrize("root", PLUGIN_SOURCES, ids=lambda p: p.parent.name)
def test_plugins_import_blayers_core_only_through_the_plugin_api(root: Path) -> None:
    files = sorted(root.rglob("*.py"))
    assert files
    refused = {
        f"{path.relative_to(REPO_ROOT)}:{line}": module
        for path in files
        for line, module in blayers_core_imports(path.read_text())
    }
    assert refused == {}, "import these names from blayers_core.plugin instead"
