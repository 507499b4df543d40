"""End to end: the example third-party plugins, built as wheels and installed in a fresh venv.

``examples/robust_plugin`` (distribution ``blayers-robust``, entry point ``robust``) and the plugin
template ``examples/plugin_template`` (``blayers-laplace``, entry point ``laplace``) are built with
the running interpreter, installed with ``pip --no-index`` *with* their dependencies into a virtual
environment created in ``tmp_path``, and exercised from a new process running that environment's
Python. Their documented dependency line, ``blayers-core``, must resolve to this project, installed
in the parent environment: with ``--no-index`` any other requirement would fail to install. The
new environment sees this one's packages (jax, numpyro, the editable blayers) through a ``.pth``
file that calls ``site.addsitedir`` on every site-packages directory of this interpreter, so the
editable install's own ``.pth`` files are processed there too; nothing is downloaded.

The plugin is installed only in the new environment, so a look-up in this process must not see it:
the registry really finds it through the entry point of the installed wheel.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import site
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from blayers_core import ComponentNotFoundError, Registry

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = REPO_ROOT / "examples" / "robust_plugin"
TEMPLATE_DIR = REPO_ROOT / "examples" / "plugin_template"
TRUE_BETA = [1.0, -2.0, 0.5]

# Run in the fresh venv: the plugin is found by name, a model built from it is fitted, and the
# facts the test checks are printed as one JSON line. argv[1]: the true coefficients, as JSON.
FIT_SCRIPT = textwrap.dedent(
    """
    import importlib.metadata as metadata
    import json
    import sys

    import numpy as np

    import blayers_core
    import blayers_robust
    from blayers_core import fit, layer, link

    comps = {
        c.qualified_name: {"distribution": c.distribution, "version": c.version,
                           "description": c.description, "first_party": c.first_party}
        for c in blayers_core.components()
    }
    coef = layer("student_t_prior", df=3.0, scale=2.0)
    lik = link("robust_student_t")

    def model(x, y=None):
        return lik(coef("mu", x), y)

    rng = np.random.default_rng(0)
    n = 300
    x = rng.normal(size=(n, 3))
    y = x @ np.array(json.loads(sys.argv[1])) + 0.5 * rng.standard_t(3, size=n)
    y[:6] += 25.0  # gross outliers that a Gaussian likelihood would chase
    result = fit(model, x=x, y=y, num_steps=1000, num_samples=500, seed=0, progress_bar=False)
    draws = result.posterior_samples
    print(json.dumps({
        "prefix": sys.prefix,
        "module_file": blayers_robust.__file__,
        "dist_files": str(metadata.distribution("blayers-robust").locate_file("")),
        "components": comps,
        "failures": [f.describe() for f in blayers_core.plugin_failures()],
        "layer_type": type(coef).__name__,
        "link_type": type(lik).__name__,
        "sites": sorted(draws),
        "beta_shape": list(draws["mu/beta"].shape),
        "beta_mean": np.asarray(draws["mu/beta"]).mean(axis=0).ravel().tolist(),
        "sigma_mean": float(np.mean(draws["obs/sigma"])),
        "final_loss": float(result.losses[-1]),
        "first_loss": float(result.losses[0]),
    }))
    """
)

# Run in the fresh venv with BLAYERS_PLUGINS="": third-party plugins are off, first-party stay.
DISABLED_SCRIPT = textwrap.dedent(
    """
    import importlib.metadata as metadata
    import json

    from blayers_core import ComponentNotFoundError, components, layer, link

    out = {
        "installed": metadata.distribution("blayers-robust").version,
        "adaptive": type(layer("adaptive")).__name__,
        "gaussian": type(link("gaussian")).__name__,
        "layers": sorted(c.qualified_name for c in components("layer")),
        "errors": {},
    }
    for lookup, name in [
        (layer, "student_t_prior"),
        (layer, "robust:student_t_prior"),
        (link, "robust_student_t"),
    ]:
        try:
            lookup(name)
        except ComponentNotFoundError as exc:
            out["errors"][name] = str(exc)
        else:
            out["errors"][name] = None
    print(json.dumps(out))
    """
)


def _run(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 180,
    cwd: Path | None = None,
) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)
    if proc.returncode != 0:
        pytest.fail(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc.stdout


def _last_json_line(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert lines, f"the script printed no JSON:\n{stdout}"
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def _child_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"BLAYERS_PLUGINS", "PYTHONPATH"}}
    env.update(
        JAX_PLATFORMS="cpu",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(overrides)
    return env


def _installed_here() -> bool:
    try:
        metadata.distribution("blayers-robust")
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture(scope="module")
def robust_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the two example plugins' wheels installed; returns its Python."""
    pytest.importorskip("hatchling", reason="building the example plugin needs hatchling")
    tmp = tmp_path_factory.mktemp("robust_plugin")
    env = _child_env()

    wheels = tmp / "wheels"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "-w",
            str(wheels),
            str(PLUGIN_DIR),
            str(TEMPLATE_DIR),
        ],
        env=env,
    )
    built = sorted(str(w) for w in wheels.glob("blayers_*.whl"))
    assert len(built) == 2, built

    # A bare venv; pip comes from this environment through the .pth below (no ensurepip, no
    # network), and installs into the new venv because it runs under the new venv's Python.
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env=env)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    purelib = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            env=env,
        ).strip()
    )
    # addsitedir appends each directory *and* processes its .pth files (the editable install of
    # blayers lives in one), after the new venv's own site-packages. "00" sorts it first.
    lines = [f"import site; site.addsitedir({d!r})" for d in site.getsitepackages()]
    (purelib / "00_parent_environment.pth").write_text("\n".join(lines) + "\n")

    _run(
        [str(python), "-m", "pip", "install", "--no-index", "--quiet", *built],
        env=env,
    )
    return python


def test_plugin_is_not_visible_in_this_process() -> None:
    """The test's own environment doesn't have the plugin: what the venv sees comes from it."""
    if _installed_here():
        pytest.skip("blayers-robust is installed in the test environment itself")
    names = {c.qualified_name for c in Registry().components()}
    assert "blayers:adaptive" in names
    assert not any(n.startswith("robust:") for n in names), names
    with pytest.raises(ComponentNotFoundError):
        Registry().get("layer", "student_t_prior")


def test_plugin_found_by_name_and_fits_in_fresh_venv(robust_venv: Path) -> None:
    out = _last_json_line(
        _run([str(robust_venv), "-c", FIT_SCRIPT, json.dumps(TRUE_BETA)], env=_child_env())
    )

    # It ran in the new venv, with the plugin from the installed wheel.
    venv_dir = robust_venv.parent.parent  # <venv>/bin/python
    assert Path(out["prefix"]) == venv_dir
    assert Path(out["module_file"]).is_relative_to(venv_dir), out["module_file"]
    assert Path(out["dist_files"]).is_relative_to(venv_dir), out["dist_files"]

    comps = out["components"]
    assert "robust:student_t_prior" in comps
    assert comps["robust:student_t_prior"]["distribution"] == "blayers-robust"
    assert comps["robust:student_t_prior"]["version"] == "0.1.0"
    assert comps["robust:student_t_prior"]["first_party"] is False
    assert comps["robust:student_t_prior"]["description"].startswith("Linear layer")
    assert comps["robust:robust_student_t"]["distribution"] == "blayers-robust"
    assert comps["robust:robust_student_t"]["description"].startswith("Student-t likelihood")
    assert comps["blayers:adaptive"]["first_party"] is True  # first-party still there
    assert out["failures"] == []
    assert (out["layer_type"], out["link_type"]) == ("StudentTPriorLayer", "RobustStudentTLink")

    # The sites are scoped as the protocols require, and the coefficients are recovered.
    assert out["sites"] == ["mu/beta", "obs/df", "obs/sigma"]
    assert out["beta_shape"] == [500, 3, 1]
    assert out["final_loss"] < out["first_loss"]
    for got, want in zip(out["beta_mean"], TRUE_BETA, strict=True):
        assert abs(got - want) < 0.25, (out["beta_mean"], TRUE_BETA)
    # The robust likelihood ignores the outliers: the noise scale stays near 0.5, not ~3.
    assert 0.2 < out["sigma_mean"] < 1.2, out["sigma_mean"]


def test_blayers_plugins_empty_disables_the_plugin(robust_venv: Path) -> None:
    env = _child_env(BLAYERS_PLUGINS="")
    out = _last_json_line(_run([str(robust_venv), "-c", DISABLED_SCRIPT], env=env))

    assert out["installed"] == "0.1.0"  # installed, but not loaded
    assert out["adaptive"] == "AdaptiveLayer"
    assert out["gaussian"] == "GaussianLink"
    assert "blayers:adaptive" in out["layers"]
    assert not any(n.startswith("robust:") for n in out["layers"]), out["layers"]
    errors = out["errors"]
    assert all(errors[name] is not None for name in errors), errors
    assert "no layer named 'student_t_prior'" in errors["student_t_prior"]
    assert "BLAYERS_PLUGINS" in errors["robust:student_t_prior"]
    assert "no link named 'robust_student_t'" in errors["robust_student_t"]


# Run in the fresh venv: the template plugin's components by name, on data with known
# coefficients and Laplace noise with a few gross outliers (a median regression ignores them).
TEMPLATE_FIT_SCRIPT = textwrap.dedent(
    """
    import json

    import numpy as np

    from blayers_core import components, fit, layer, link

    coef, lik = layer("laplace_prior", scale=2.0), link("laplace:laplace")

    def model(x, y=None):
        return lik(coef("beta", x), y)

    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 2))
    y = x @ np.array([1.5, -0.5]) + rng.laplace(scale=0.3, size=400)
    y[:8] += 30.0
    result = fit(model, x=x, y=y, num_steps=1500, batch_size=100, seed=0, progress_bar=False)
    draws = result.posterior_samples
    print(json.dumps({
        "distributions": sorted({c.distribution for c in components()}),
        "beta_mean": np.asarray(draws["beta/beta"]).mean(axis=0).ravel().tolist(),
        "scale_mean": float(np.mean(draws["obs/scale"])),
        # the Laplace scale's maximum-likelihood estimate at the true coefficients
        "scale_mle": float(np.mean(np.abs(y - x @ np.array([1.5, -0.5])))),
        "types": [type(coef).__name__, type(lik).__name__],
    }))
    """
)


def test_template_plugin_passes_its_own_conformance_tests_in_fresh_venv(
    robust_venv: Path,
) -> None:
    """The template's test suite (the conformance kit, one test per component and check) passes
    where the template is installed from its wheel, beside this project."""
    out = _run(
        [str(robust_venv), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        env={**_child_env(), "PYTHONPATH": ""},
        cwd=TEMPLATE_DIR,
        timeout=600,
    )
    assert " passed" in out and "failed" not in out, out


def test_template_plugin_used_by_name_recovers_known_coefficients(robust_venv: Path) -> None:
    out = _last_json_line(_run([str(robust_venv), "-c", TEMPLATE_FIT_SCRIPT], env=_child_env()))
    assert {"blayers-core", "blayers-laplace", "blayers-robust"} <= set(out["distributions"])
    assert out["types"] == ["LaplacePriorLayer", "LaplaceLink"]
    for got, want in zip(out["beta_mean"], [1.5, -0.5], strict=True):
        assert abs(got - want) < 0.15, out["beta_mean"]
    # The scale's posterior mean is near its closed-form MLE, mean |y - x beta| (0.3 + outliers).
    assert abs(out["scale_mean"] / out["scale_mle"] - 1) < 0.1, out
