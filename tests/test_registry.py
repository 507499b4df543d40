"""The entry-point registry, exercised with fake distributions written to a temporary folder.

Each test builds its own :class:`Registry` over a folder of ``*.dist-info`` directories, so nothing
depends on what is installed in the real site-packages. The first-party plugin is represented by a
fake ``blayers-core`` distribution whose entry point ``blayers`` names the real ``blayers_plugins``
module. Fake plugin modules declare ``BLAYERS_PLUGIN_API = 1`` unless a test says otherwise.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from helpers import FakeSite

from blayers_core import (
    AmbiguousComponentError,
    ComponentNotFoundError,
    PluginConflictError,
    PluginError,
    PluginWarning,
    Registry,
)
from blayers_core.plugin import PLUGIN_API_VERSION

ROOT = Path(__file__).resolve().parents[1]

LAYER_PLUGIN = """
from blayers_core import hookimpl

class {cls}:
    '''{doc}'''
    def __call__(self, name, x):
        return x

@hookimpl
def register_layers(register):
{registrations}
"""


def layer_plugin(*names: str, cls: str = "Thing", doc: str = "A test layer.") -> str:
    registrations = "\n".join(f"    register({n!r}, {cls})" for n in names) or "    pass"
    return LAYER_PLUGIN.format(cls=cls, doc=doc, registrations=registrations)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSite:
    fake = FakeSite(tmp_path, monkeypatch)
    fake.add_first_party()
    return fake


def test_first_party_components_come_through_the_entry_point(site: FakeSite) -> None:
    registry = site.registry()
    adaptive = registry.get("layer", "adaptive")
    assert (adaptive.plugin, adaptive.distribution, adaptive.first_party) == (
        "blayers",
        "blayers-core",
        True,
    )
    assert adaptive.qualified_name == "blayers:adaptive"
    kinds = {c.kind for c in registry.components()}
    assert kinds == {"layer", "link", "loss", "guide", "optimizer", "method"}


def test_listing_gives_kind_names_origin_version_and_description(site: FakeSite) -> None:
    site.add("acme-layers", {"acme": layer_plugin("ridge", doc="Ridge layer. More text.")}, "2.3")
    registry = site.registry()
    (ridge,) = [c for c in registry.components("layer") if c.name == "ridge"]
    assert ridge.kind == "layer"
    assert ridge.qualified_name == "acme:ridge"
    assert (ridge.distribution, ridge.version) == ("acme-layers", "2.3")
    assert ridge.description == "Ridge layer."
    assert not ridge.first_party
    assert all(c.kind == "link" for c in registry.components("link"))


def test_unknown_name_lists_available_and_suggests_close_match(site: FakeSite) -> None:
    registry = site.registry()
    with pytest.raises(ComponentNotFoundError, match="Did you mean 'adaptive'") as info:
        registry.get("layer", "adaptve")
    assert "fixed_prior" in str(info.value) and "lowrank_interaction" in str(info.value)
    with pytest.raises(ComponentNotFoundError, match=r"no link named 'gausian'.*'gaussian'"):
        registry.get("link", "gausian")


def test_bare_name_of_two_third_party_plugins_is_ambiguous(site: FakeSite) -> None:
    site.add("one", {"p1": layer_plugin("ridge")})
    site.add("two", {"p2": layer_plugin("ridge")})
    registry = site.registry()
    with pytest.raises(AmbiguousComponentError, match="'p1:ridge', 'p2:ridge'"):
        registry.get("layer", "ridge")
    assert registry.get("layer", "p1:ridge").distribution == "one"
    assert registry.get("layer", "p2:ridge").distribution == "two"


def test_third_party_cannot_take_a_first_party_name(site: FakeSite) -> None:
    site.add("squatter", {"sq": layer_plugin("adaptive", "mine")})
    registry = site.registry()
    with pytest.warns(
        PluginWarning, match=r"layer sq:adaptive from distribution 'squatter'.*reserved"
    ):
        registry.components()
    assert registry.get("layer", "adaptive").first_party
    assert registry.get("layer", "mine").plugin == "sq"  # its other components still load
    with pytest.raises(ComponentNotFoundError, match="reserved") as info:
        registry.get("layer", "sq:adaptive")
    assert isinstance(info.value.__cause__, PluginError)


def test_plugin_that_fails_to_import_is_isolated(site: FakeSite) -> None:
    site.add("broken-dist", {"broken": "raise ImportError('needs libfoo 2')\n"}, "0.9")
    site.add("fine-dist", {"fine": layer_plugin("ridge")})
    registry = site.registry()
    with pytest.warns(PluginWarning, match=r"plugin 'broken' from distribution 'broken-dist' 0\.9"):
        registry.components()
    assert registry.get("layer", "ridge").plugin == "fine"
    with pytest.raises(ComponentNotFoundError, match="needs libfoo 2") as info:
        registry.get("layer", "broken:anything")
    assert isinstance(info.value.__cause__, ImportError)
    (failure,) = registry.failures()
    assert (failure.plugin, failure.distribution) == ("broken", "broken-dist")


def test_hook_that_raises_takes_only_its_plugin_down(site: FakeSite) -> None:
    source = """
    from blayers_core import hookimpl

    @hookimpl
    def register_layers(register):
        raise RuntimeError("half-written plugin")
    """
    site.add("raiser", {"raiser": source})
    site.add("fine-dist", {"fine": layer_plugin("ridge")})
    registry = site.registry()
    with pytest.warns(PluginWarning, match="plugin 'raiser'.*half-written plugin"):
        assert registry.get("layer", "ridge").plugin == "fine"


def test_component_that_breaks_the_protocol_is_isolated(site: FakeSite) -> None:
    source = """
    from blayers_core import hookimpl

    class NotALayer:
        '''Has no __call__.'''

    class GoodLayer:
        def __call__(self, name, x):
            return x

    class NotALoss:
        def __call__(self):
            return 0.0

    @hookimpl
    def register_layers(register):
        register("not_a_layer", NotALayer)
        register("good", GoodLayer)
        register("Bad Name", GoodLayer)

    @hookimpl
    def register_losses(register):
        register("fake_loss", lambda: NotALoss())
    """
    site.add("half-good", {"hg": source})
    registry = site.registry()
    with pytest.warns(PluginWarning) as record:
        registry.components()
    messages = " | ".join(str(w.message) for w in record)
    assert "layer hg:not_a_layer from distribution 'half-good'" in messages
    assert "'Bad Name' is not valid" in messages
    assert registry.get("layer", "good").plugin == "hg"
    with pytest.raises(ComponentNotFoundError, match="no __call__") as info:
        registry.get("layer", "not_a_layer")
    assert isinstance(info.value.__cause__, PluginError)
    # A factory whose product breaks the protocol is caught when it is built.
    with pytest.raises(PluginError, match="lacks loss"):
        registry.build("loss", "fake_loss")


def test_environment_variable_restricts_and_disables_third_party(site: FakeSite) -> None:
    site.add("one", {"p1": layer_plugin("ridge")})
    site.add("two", {"p2": layer_plugin("lasso")})

    none = site.registry({"BLAYERS_PLUGINS": ""})
    assert {c.plugin for c in none.components()} == {"blayers"}  # first-party always loads
    with pytest.raises(ComponentNotFoundError, match="not loaded because BLAYERS_PLUGINS"):
        none.get("layer", "p1:ridge")

    only_one = site.registry({"BLAYERS_PLUGINS": "p1"})
    assert only_one.get("layer", "ridge").plugin == "p1"
    with pytest.raises(ComponentNotFoundError):
        only_one.get("layer", "lasso")

    by_distribution = site.registry({"BLAYERS_PLUGINS": "two"})
    assert by_distribution.get("layer", "lasso").plugin == "p2"

    typo = site.registry({"BLAYERS_PLUGINS": "p1,p3"})
    with pytest.warns(PluginWarning, match="names 'p3'"):
        typo.components()

    everything = site.registry({})
    assert {"p1", "p2", "blayers"} <= {c.plugin for c in everything.components()}


def test_plugins_load_lazily_and_once(site: FakeSite) -> None:
    source = (
        layer_plugin("ridge")
        + "\nimport builtins\nbuiltins.__dict__.setdefault('_loads', []).append(1)\n"
    )
    import builtins

    builtins.__dict__["_loads"] = []
    modules = site.add("counted", {"counted": source})
    registry = site.registry()
    assert modules["counted"] not in sys.modules  # nothing loads before the first look-up
    registry.get("layer", "ridge")
    registry.get("layer", "ridge")
    registry.components()
    assert builtins.__dict__.pop("_loads") == [1]


def test_build_checks_config_and_protocol(site: FakeSite) -> None:
    registry = site.registry()
    fm = registry.build("layer", "fm", low_rank_dim=2)
    assert fm.low_rank_dim == 2
    with pytest.raises(TypeError, match="while building layer 'blayers:fm'"):
        registry.build("layer", "fm", low_rank=2)
    with pytest.raises(ValueError, match="kind must be one of"):
        registry.get("layers", "fm")  # type: ignore[arg-type]


def test_blayers_core_never_imports_a_plugin() -> None:
    for path in (ROOT / "blayers_core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] == "blayers_plugins" for n in names), path
    code = (
        "import sys, blayers_core; "
        "assert 'blayers_plugins' not in sys.modules, 'imported at import time'; "
        "blayers_core.components(); "
        "assert 'blayers_plugins' in sys.modules, 'not loaded through the entry point'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_misspelt_hook_fails_the_plugin_loudly(site: FakeSite) -> None:
    source = """
    from blayers_core import hookimpl

    @hookimpl
    def register_layer(register):  # missing "s"
        pass
    """
    site.add("typo-dist", {"typo": source})
    registry = site.registry()
    with pytest.warns(PluginWarning, match="plugin 'typo'.*register_layer"):
        registry.components()


def test_warnings_as_errors_do_not_leave_the_registry_half_loaded(site: FakeSite) -> None:
    site.add("squatter", {"sq": layer_plugin("adaptive", "mine")})
    registry = site.registry()
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginWarning)
        with pytest.raises(PluginWarning, match="reserved"):
            registry.components()
    # Loading finished before the warning was raised: nothing is lost or loaded twice.
    assert registry.get("layer", "mine").plugin == "sq"
    assert registry.get("layer", "adaptive").first_party
    assert len(registry.failures()) == 1


@pytest.mark.parametrize("real, hijacker", [("aaa-real", "zzz-hijack"), ("zzz-real", "aaa-hijack")])
def test_a_plugin_name_declared_by_two_distributions_is_unusable(
    site: FakeSite, real: str, hijacker: str
) -> None:
    """Neither wins, whichever sorts first: every name of theirs raises, naming both."""
    site.add(real, {"same": layer_plugin("ridge", "shared")}, "1.0")
    site.add(hijacker, {"same": layer_plugin("shared", "evil")}, "6.6")
    site.add("other", {"other": layer_plugin("shared", "unrelated")})
    registry = site.registry()
    with pytest.warns(PluginWarning) as record:
        registry.components()
    warned = [str(w.message) for w in record]
    assert warned and all(real in m and hijacker in m for m in warned), warned
    assert not {c.plugin for c in registry.components()} & {"same"}
    for name in ("same:ridge", "same:evil", "same:nothing", "ridge", "evil"):
        with pytest.raises(PluginConflictError) as info:
            registry.get("layer", name)
        message = str(info.value)
        assert f"'{real}' 1.0" in message and f"'{hijacker}' 6.6" in message, message
        assert f"pip uninstall {real}" in message and f"pip uninstall {hijacker}" in message
        assert "'same'" in message
    # A bare name they share with an unaffected plugin is unusable too, and says what still works.
    with pytest.raises(PluginConflictError, match="'other:shared' is unaffected"):
        registry.get("layer", "shared")
    assert registry.get("layer", "other:shared").plugin == "other"
    assert registry.get("layer", "unrelated").plugin == "other"
    assert registry.get("layer", "adaptive").first_party
    failures = {(f.plugin, f.distribution) for f in registry.failures()}
    assert failures == {("same", real), ("same", hijacker)}
    assert all(isinstance(f.error, PluginConflictError) for f in registry.failures())


def test_conflict_error_is_a_lookup_and_a_plugin_error() -> None:
    assert issubclass(PluginConflictError, AmbiguousComponentError)
    assert issubclass(PluginConflictError, PluginError)


def test_naming_one_distribution_in_the_environment_settles_a_conflict(site: FakeSite) -> None:
    site.add("aaa", {"same": layer_plugin("ridge")})
    site.add("bbb", {"same": layer_plugin("lasso")})
    registry = site.registry({"BLAYERS_PLUGINS": "bbb"})
    assert registry.get("layer", "same:lasso").distribution == "bbb"
    with pytest.raises(ComponentNotFoundError):
        registry.get("layer", "ridge")
    assert registry.failures() == []


def test_a_third_party_plugin_cannot_take_the_first_party_plugin_name(site: FakeSite) -> None:
    site.add("impostor", {"blayers": layer_plugin("adaptive", "backdoor")})
    registry = site.registry()
    with pytest.warns(PluginWarning, match=r"'impostor'.*reserved.*pip uninstall impostor"):
        registry.components()
    adaptive = registry.get("layer", "adaptive")
    assert adaptive.first_party and adaptive.distribution == "blayers-core"
    assert registry.get("layer", "blayers:adaptive") is adaptive
    with pytest.raises(ComponentNotFoundError):
        registry.get("layer", "backdoor")
    with pytest.raises(ComponentNotFoundError):
        registry.get("layer", "blayers:backdoor")
    (failure,) = registry.failures()
    assert (failure.plugin, failure.distribution) == ("blayers", "impostor")


def test_the_first_party_plugin_name_is_reserved_even_without_first_party(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = FakeSite(tmp_path, monkeypatch)
    bare.add("impostor", {"blayers": layer_plugin("ridge")})
    registry = bare.registry()
    with pytest.warns(PluginWarning, match="reserved"):
        assert registry.components() == []


def test_the_same_distribution_twice_on_the_path_is_not_a_conflict(
    site: FakeSite, tmp_path: Path
) -> None:
    editable = tmp_path / "editable"
    site.add("Acme.Layers", {"acme": layer_plugin("ridge")}, "2.0", site_dir=editable)
    site.add("acme_layers", {"acme": layer_plugin("ridge")}, "1.0")
    registry = Registry(search_path=[str(editable), str(site.root)], environ={})
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginWarning)  # no clash is reported
        ridge = registry.get("layer", "acme:ridge")
    assert (ridge.distribution, ridge.version) == ("Acme.Layers", "2.0")  # first on the path
    assert registry.get("layer", "ridge") is ridge
    assert registry.failures() == []


def test_first_party_distribution_name_is_compared_normalized(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeSite(tmp_path, monkeypatch)
    info = tmp_path / "Blayers_Core-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: Blayers_Core\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[blayers.plugins]\nblayers = blayers_plugins\n")
    assert fake.registry().get("layer", "adaptive").first_party


def test_a_plugin_that_declares_no_api_version_is_skipped(site: FakeSite) -> None:
    site.add("old-dist", {"old": layer_plugin("ridge")}, "0.3", api=None)
    registry = site.registry()
    with pytest.warns(
        PluginWarning,
        match=r"plugin 'old' \(distribution 'old-dist' 0\.3\) does not declare.*"
        r"BLAYERS_PLUGIN_API = 1",
    ):
        registry.components()
    with pytest.raises(ComponentNotFoundError, match="does not declare") as info:
        registry.get("layer", "ridge")
    assert isinstance(info.value.__cause__, PluginError)
    (failure,) = registry.failures()
    assert (failure.plugin, failure.distribution, failure.component) == ("old", "old-dist", None)


@pytest.mark.parametrize(
    "api, advice",
    [
        (PLUGIN_API_VERSION + 1, "upgrade blayers-core"),
        (PLUGIN_API_VERSION - 1, "upgrade new-dist"),
        ("1", "BLAYERS_PLUGIN_API must be an int"),
    ],
)
def test_a_plugin_that_targets_another_api_version_is_skipped(
    site: FakeSite, api: object, advice: str
) -> None:
    site.add("new-dist", {"new": layer_plugin("ridge")}, "4.0", api=api)
    site.add("fine-dist", {"fine": layer_plugin("lasso")})
    registry = site.registry()
    expected = (
        rf"plugin 'new' \(distribution 'new-dist' 4\.0\) targets plugin API {api!r}, "
        rf"but blayers-core \S+ provides plugin API {PLUGIN_API_VERSION}; {advice}"
    )
    with pytest.warns(PluginWarning, match=expected):
        registry.components()
    with pytest.raises(ComponentNotFoundError, match=expected) as info:
        registry.get("layer", "new:ridge")
    assert isinstance(info.value.__cause__, PluginError)
    assert registry.get("layer", "lasso").plugin == "fine"  # a plugin that targets it loads


def test_the_api_version_may_sit_on_the_module_of_an_object_entry_point(site: FakeSite) -> None:
    source = """
    from blayers_core import hookimpl

    class Plugin:
        @hookimpl
        def register_layers(self, register):
            register("ridge", Plugin)

        def __call__(self, name, x):
            return x

    plugin = Plugin()
    """
    modules = site.add("obj-dist", {"obj": source})
    entry_points = site.root / "obj_dist-1.0.dist-info" / "entry_points.txt"
    entry_points.write_text(f"[blayers.plugins]\nobj = {modules['obj']}:plugin\n")
    assert site.registry().get("layer", "obj:ridge").distribution == "obj-dist"
