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
from test_registry import FakeSite

from blayers_core.cli import main

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

#: A layer that needs one constructor argument and a link named like a layer: a fine plugin.
GOOD = """
import attrs
from blayers_core import hookimpl

@attrs.frozen
class Scaled:
    '''Multiplies x by a factor.

    Args:
        factor: the factor.
    '''
    factor: float
    shift: float = 0.5

    def __call__(self, name, x):
        return x * self.factor + self.shift

class AlsoALink:
    '''A link called adaptive.'''
    def __call__(self, mu, y=None):
        return mu

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


def test_doctor_passes_installed_components_and_fails_broken_ones(capsys, site) -> None:
    status, out = run(capsys, site, "doctor")
    assert status == 0, out
    assert "0 failed" in out and "good:scaled" in out

    site.add("bad-plugin", {"bad": BAD_SIGNATURE, "gone": BROKEN_IMPORT}, version="1.1")
    status, out = run(capsys, site, "doctor", "--json")
    assert status == 1
    report = json.loads(out)
    assert not report["ok"] and report["failed"] == 2
    failed = {c["name"]: c for c in report["checks"] if not c["passed"]}
    assert set(failed) == {"bad:no_inputs", "gone"}
    assert "does not accept 2 positional arguments" in failed["bad:no_inputs"]["detail"]
    assert "ModuleNotFoundError" in failed["gone"]["detail"]
    passed = {c["name"] for c in report["checks"] if c["passed"]}
    assert {"blayers:adaptive", "blayers:embedding", "blayers:adam", "good:scaled"} <= passed


def test_console_script_runs_doctor_in_a_real_process(tmp_path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "fake_bad_cli.py").write_text(BAD_SIGNATURE)
    info = site / "bad_plugin-1.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-plugin\nVersion: 1.1\n")
    (info / "entry_points.txt").write_text("[blayers.plugins]\nbad = fake_bad_cli\n")
    script = Path(sys.executable).parent / "blayers"
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("BLAYERS_PLUGINS", None)
    done = subprocess.run(
        [str(script), "doctor", "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert [c["name"] for c in report["checks"] if not c["passed"]] == ["bad:no_inputs"]
    module = subprocess.run(
        [sys.executable, "-m", "blayers_core", "plugins", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert module.returncode == 0, module.stderr
    assert any(p["plugin"] == "blayers" for p in json.loads(module.stdout))
