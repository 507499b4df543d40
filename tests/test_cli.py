"""The ``blayers`` command: plugins, describe and doctor, in-process and as the console script.

The in-process tests hand ``main`` a registry over a folder of fake distributions (as
``test_registry.py`` does), so they do not depend on what else is installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FakeSite

from blayers_core.cli import doctor_report, main

BROKEN_IMPORT = "import not_a_module_that_exists\n"

#: A layer whose __call__ takes no inputs: registered (it has __call__) but breaks the protocol.
BAD_SIGNATURE = """
from blayers_core import hookimpl

class NoInputs:
    '''Takes nothing.'''
    def __call__(self):
        return 0

@hookimpl
def register_layers(register):
    register("no_inputs", NoInputs)
"""

#: A layer that needs one constructor argument (declared for the kit) and a link named like a
#: layer: a fine plugin, which passes the conformance kit.
GOOD = r"""
import attrs
import numpyro
import numpyro.distributions as dist
from numpyro.handlers import scope
from blayers_core import hookimpl
from blayers_core.plugin import align_to_target, layer_input

def _positive(instance, attribute, value):
    if not isinstance(value, float) or value <= 0:
        raise ValueError(f"{attribute.name} must be a positive float, got {value!r}")

@attrs.frozen
class Scaled:
    r'''Multiplies x by a factor.

    .. math::
        \beta \sim \mathcal{N}(0, \text{factor}) \;(d, u), \qquad
        \text{out} = x\beta + \text{shift} \;(n, u)

    Args:
        factor: the factor.
    '''

    example_config = {"factor": 2.0}

    factor: float = attrs.field(validator=_positive)
    shift: float = 0.5

    def __call__(self, name, x, units=1):
        x = layer_input(name, "x", x)
        with scope(prefix=name):
            prior = dist.Normal(0.0, self.factor).expand([x.shape[1], units]).to_event(2)
            beta = numpyro.sample("beta", prior)
        return x @ beta + self.shift

class AlsoALink:
    '''A link called adaptive: y ~ Normal(mu, 1).'''
    def __call__(self, mu, y=None):
        mu, y = align_to_target("obs", mu, y)
        return numpyro.sample("obs", dist.Normal(mu, 1.0), obs=y)

@hookimpl
def register_layers(register):
    register("scaled", Scaled)

@hookimpl
def register_links(register):
    register("adaptive", AlsoALink)
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSite:
    fake = FakeSite(tmp_path, monkeypatch)
    fake.add_first_party()
    fake.add("good-plugin", {"good": GOOD}, version="2.3")
    return fake


def run(capsys, site: FakeSite, *argv: str) -> tuple[int, str]:
    status = main(list(argv), registry=site.registry())
    return status, capsys.readouterr().out


def test_plugins_lists_components_versions_and_load_errors(capsys, site) -> None:
    site.add("broken-plugin", {"broken": BROKEN_IMPORT}, version="0.9")
    status, out = run(capsys, site, "plugins")
    assert status == 0
    assert "blayers  (distribution blayers-core 0.1.0, first-party)" in out
    assert "good  (distribution good-plugin 2.3)" in out
    assert "layers:     scaled" in out and "links:      adaptive" in out
    assert "broken  (distribution broken-plugin 0.9)" in out
    assert "ERROR plugin skipped: ModuleNotFoundError" in out

    status, out = run(capsys, site, "plugins", "--json")
    report = {p["plugin"]: p for p in json.loads(out)}
    assert {"kind": "layer", "name": "scaled"}.items() <= report["good"]["components"][0].items()
    assert report["good"]["version"] == "2.3" and not report["good"]["first_party"]
    assert "not_a_module_that_exists" in report["broken"]["errors"][0]["error"]
    first_party = {(c["kind"], c["name"]) for c in report["blayers"]["components"]}
    assert {("layer", "adaptive"), ("link", "gaussian"), ("optimizer", "adam")} <= first_party


def test_plugins_lists_each_distribution_of_a_clashing_plugin_name_apart(capsys, site) -> None:
    """A second distribution that declares the plugin name "good", and one that declares the
    first-party name "blayers", are each listed under their own distribution with the error."""
    site.add("good-impostor", {"good": GOOD}, version="6.6")
    site.add("blayers-impostor", {"blayers": GOOD}, version="0.0.1")
    status, out = run(capsys, site, "plugins", "--json")
    assert status == 0
    report = {(p["plugin"], p["distribution"]): p for p in json.loads(out)}
    for distribution in ("good-plugin", "good-impostor"):
        (error,) = report[("good", distribution)]["errors"]
        assert "good-plugin" in error["error"] and "good-impostor" in error["error"]
        assert report[("good", distribution)]["components"] == []
    first_party = report[("blayers", "blayers-core")]
    assert first_party["errors"] == [] and first_party["components"]
    (refused,) = report[("blayers", "blayers-impostor")]["errors"]
    assert "blayers-impostor" in refused["error"]


def test_describe_prints_docstring_parameters_and_origin(capsys, site) -> None:
    status, out = run(capsys, site, "describe", "scaled")
    assert status == 0
    assert "layer good:scaled: Multiplies x by a factor." in out
    assert "distribution good-plugin 2.3" in out and ".Scaled" in out
    assert "factor: float (required)" in out and "shift: float = 0.5" in out

    status, out = run(capsys, site, "describe", "--kind", "layer", "blayers:adaptive", "--json")
    report = json.loads(out)
    assert report["origin"]["module"] == "blayers_plugins.layers.adaptive"
    assert report["origin"]["distribution"] == "blayers-core"
    params = {p["name"]: p for p in report["parameters"]}
    assert params["scale_prior"]["default"] == "HalfNormal(scale=1)"
    assert params["coef_dist"]["default"] == "Normal"
    assert "Generative model" in report["doc"]


def test_describe_asks_for_a_kind_or_suggests_a_name(capsys, site) -> None:
    status = main(["describe", "adaptive"], registry=site.registry())
    err = capsys.readouterr().err
    assert status == 2
    assert "layer blayers:adaptive, link good:adaptive" in err and "--kind" in err
    assert main(["describe", "--kind", "link", "adaptive"], registry=site.registry()) == 0
    assert "link good:adaptive" in capsys.readouterr().out
    status = main(["describe", "adaptiv", "--json"], registry=site.registry())
    assert status == 2
    assert "Did you mean 'adaptive'" in json.loads(capsys.readouterr().out)["error"]


#: Components the in-process doctor tests check (all of them would take minutes).
CHECKED = ("adaptive", "blayers:embedding", "adam", "scaled")


def test_doctor_runs_the_kit_and_fails_broken_components(capsys, site) -> None:
    status, out = run(capsys, site, "doctor", "--quick", *CHECKED)
    assert status == 0, out
    assert "5 checked (quick: without the fits), 0 failed" in out
    assert "pass  layer     good:scaled" in out and "checks passed" in out

    site.add("bad-plugin", {"bad": BAD_SIGNATURE, "gone": BROKEN_IMPORT}, version="1.1")
    status, out = run(capsys, site, "doctor", "--quick", "--json", *CHECKED, "no_inputs")
    assert status == 1
    report = json.loads(out)
    assert not report["ok"] and report["quick"] and report["failed"] == 1
    failed = {c["name"]: c for c in report["checks"] if not c["passed"]}
    assert set(failed) == {"bad:no_inputs"}
    results = {r["check"]: r for r in failed["bad:no_inputs"]["results"]}
    assert results["check_component_builds"]["status"] == "pass"
    signature = results["check_layer_accepts_name_and_inputs"]
    assert signature["status"] == "fail"
    assert "failed for layer 'no_inputs' (bad:no_inputs)" in signature["detail"]
    assert "does not accept (name, 1 input(s), units=1)" in signature["detail"]
    assert "check_layer_accepts_name_and_inputs" in failed["bad:no_inputs"]["detail"]
    passed = {c["name"] for c in report["checks"] if c["passed"]}
    assert passed == {
        "blayers:adaptive",
        "good:adaptive",
        "blayers:embedding",
        "blayers:adam",
        "good:scaled",
    }


def test_doctor_reports_plugins_that_failed_to_load(
    capsys, site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.add("gone-plugin", {"gone": BROKEN_IMPORT}, version="1.1")
    report = doctor_report(site.registry(), quick=True, names=["adam"])
    assert report["ok"] and [c["name"] for c in report["checks"]] == ["blayers:adam"]
    # A site without the first-party plugin, so that the whole run checks only two plugins.
    (tmp_path / "small").mkdir()
    small = FakeSite(tmp_path / "small", monkeypatch)
    small.add("good-plugin", {"good": GOOD}, version="2.3")
    small.add("gone-plugin", {"gone": BROKEN_IMPORT}, version="1.1")
    status = main(["doctor", "--json", "--quick"], registry=small.registry())
    checks = json.loads(capsys.readouterr().out)["checks"]
    failed = [c for c in checks if not c["passed"]]
    assert status == 1
    assert [c["name"] for c in failed] == ["gone"]
    assert "ModuleNotFoundError" in failed[0]["detail"]
    assert {c["name"] for c in checks if c["passed"]} == {"good:scaled", "good:adaptive"}


def test_doctor_fits_by_default_and_checks_only_the_names_given(capsys, site) -> None:
    status, out = run(capsys, site, "doctor", "--json", "good:scaled")
    assert status == 0, out
    report = json.loads(out)
    assert [c["name"] for c in report["checks"]] == ["good:scaled"] and not report["quick"]
    statuses = {r["check"]: r["status"] for r in report["checks"][0]["results"]}
    assert statuses["check_layer_fits_and_predicts"] == "pass"
    status = main(["doctor", "no_such_component"], registry=site.registry())
    assert status == 2
    assert "no component named 'no_such_component'" in capsys.readouterr().err


def test_doctor_reports_a_component_it_cannot_build(capsys, site) -> None:
    needs_config = GOOD.replace('example_config = {"factor": 2.0}', "")
    site.add("plain-plugin", {"plain": needs_config}, version="0.1")
    status, out = run(capsys, site, "doctor", "--quick", "plain:scaled")
    assert status == 1
    assert "FAIL  layer     plain:scaled" in out
    assert "check_component_builds failed for layer 'scaled' (plain:scaled)" in out
    assert "declare them on the factory as example_config" in out


def test_console_script_runs_doctor_in_a_real_process(tmp_path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "fake_bad_cli.py").write_text(BAD_SIGNATURE + "\nBLAYERS_PLUGIN_API = 1\n")
    info = site / "bad_plugin-1.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-plugin\nVersion: 1.1\n")
    (info / "entry_points.txt").write_text("[blayers.plugins]\nbad = fake_bad_cli\n")
    script = Path(sys.executable).parent / "blayers"
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("BLAYERS_PLUGINS", None)
    done = subprocess.run(
        [str(script), "doctor", "--json", "--quick", "no_inputs", "adam"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert [c["name"] for c in report["checks"] if not c["passed"]] == ["bad:no_inputs"]
    assert [c["name"] for c in report["checks"] if c["passed"]] == ["blayers:adam"]
    module = subprocess.run(
        [sys.executable, "-m", "blayers_core", "plugins", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert module.returncode == 0, module.stderr
    assert any(p["plugin"] == "blayers" for p in json.loads(module.stdout))
