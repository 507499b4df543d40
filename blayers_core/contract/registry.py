"""The entry-point registry: finds plugins, collects their components, resolves names.

Plugins are found through one entry-point group, ``blayers.plugins``. The first-party plugin that
ships with blayers (entry point ``blayers`` of distribution ``blayers-core``) is found the same way,
never imported by name. Each plugin implements the hooks of
:mod:`blayers_core.contract.hookspecs`; every component it registers gets a qualified name
``<plugin>:<name>`` where ``<plugin>`` is the entry point's name.

Rules
-----
* The bare name works when exactly one plugin registers it; otherwise the qualified name is needed.
* A plugin name belongs to one distribution. When several distributions declare the same entry-point
  name, none of them is loaded (a :class:`~blayers_core.contract.errors.PluginWarning` names them
  all), and looking up any name under that prefix, or a bare name one of them registers, raises
  :class:`~blayers_core.contract.errors.PluginConflictError` naming every distribution. A clash is
  never settled by sort or path order. The same distribution found twice on the path (say an
  editable and a regular install; names compared per PEP 503) is not a clash: the first one wins,
  as for imports.
* First-party names are reserved: a third-party distribution that declares the plugin name
  ``blayers`` is refused, and a third-party plugin that registers a first-party component name is
  refused that component with a warning; its other components still load.
* A plugin module declares the plugin API version it targets, ``BLAYERS_PLUGIN_API = 1``
  (:data:`~blayers_core.plugin.PLUGIN_API_VERSION`). A plugin that does not declare it,
  or targets another version, is skipped like a plugin that fails to import, with a message naming
  the plugin, its distribution and both versions: a plugin that does not say which contract it was
  written against cannot be trusted to keep this one.
* A plugin that fails to import, or whose hook raises, is skipped with a warning naming it and its
  distribution; asking for its components raises with the original exception as the cause. A single
  component that breaks its protocol is skipped the same way.
* ``BLAYERS_PLUGINS`` restricts which third-party plugins load: unset loads all, an empty value
  loads none, ``a,b`` loads those named (entry-point or distribution names). First-party plugins
  always load.
* Plugins are loaded once per :class:`Registry`, on the first look-up, not at import time.
"""

from __future__ import annotations

import difflib
import importlib.metadata as metadata
import inspect
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import pluggy

from blayers_core.contract import hookspecs
from blayers_core.contract._typing import COMPONENT_KINDS, ComponentKind
from blayers_core.contract.errors import (
    AmbiguousComponentError,
    ComponentNotFoundError,
    PluginConflictError,
    PluginError,
    PluginWarning,
)
from blayers_core.contract.version import PLUGIN_API_VERSION, __version__

#: Distribution whose plugins are first-party; their component names are reserved.
FIRST_PARTY_DISTRIBUTION = "blayers-core"
#: Entry-point name of the first-party plugin: the ``blayers:`` prefix, reserved to it.
FIRST_PARTY_PLUGIN = "blayers"
#: Module attribute through which a plugin declares the plugin API version it targets.
PLUGIN_API_ATTRIBUTE = "BLAYERS_PLUGIN_API"
#: Environment variable that restricts (or, set empty, disables) third-party plugin loading.
PLUGINS_ENV_VAR = "BLAYERS_PLUGINS"

_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


@attrs.frozen
class Component:
    """One registered component and where it came from."""

    kind: ComponentKind
    name: str
    plugin: str
    distribution: str
    version: str
    factory: Callable[..., Any] = attrs.field(repr=False)
    description: str
    first_party: bool

    @property
    def qualified_name(self) -> str:
        """``<plugin>:<name>``, unique across all installed plugins."""
        return f"{self.plugin}:{self.name}"


@attrs.frozen
class PluginFailure:
    """A plugin, or one component of it (``component`` set), that was skipped, and why."""

    plugin: str
    distribution: str
    version: str
    error: BaseException
    kind: ComponentKind | None = None
    component: str | None = None

    def describe(self) -> str:
        what = f"plugin {self.plugin!r}"
        if self.component is not None:
            what = f"{self.kind} {self.plugin}:{self.component}"
        return (
            f"{what} from distribution {self.distribution!r} {self.version} "
            f"was skipped: {type(self.error).__name__}: {self.error}"
        )


@attrs.frozen
class _PluginSource:
    """An entry point together with the distribution that declares it."""

    name: str
    distribution: str
    version: str
    load: Callable[[], Any]

    @property
    def first_party(self) -> bool:
        return normalize_distribution(self.distribution) == normalize_distribution(
            FIRST_PARTY_DISTRIBUTION
        )

    @property
    def label(self) -> str:
        """``'<distribution>' <version>``, for messages."""
        return f"{self.distribution!r} {self.version}"


def normalize_distribution(name: str) -> str:
    """A distribution name as PEP 503 compares it: lower-case, runs of ``-_.`` made one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _each_once(sources: Iterable[_PluginSource]) -> list[_PluginSource]:
    """``sources`` without repeats of a (distribution, entry point): the first one wins.

    The same distribution can be found twice on the path (an editable and a regular install); like
    an import, the first one on the path is the one used, and it is not a clash with itself.
    """
    found: dict[tuple[str, str], _PluginSource] = {}
    for source in sources:
        found.setdefault((normalize_distribution(source.distribution), source.name), source)
    return list(found.values())


def _installed_plugin_sources(search_path: Sequence[str] | None) -> list[_PluginSource]:
    """Every entry point of the plugin group, first-party first, each distribution once."""
    dists = (
        metadata.distributions()
        if search_path is None
        else metadata.distributions(path=list(search_path))
    )
    found = _each_once(
        _PluginSource(ep.name, dist.metadata["Name"] or "<unknown>", dist.version, ep.load)
        for dist in dists
        for ep in dist.entry_points
        if ep.group == hookspecs.ENTRY_POINT_GROUP
    )
    return sorted(found, key=lambda s: (not s.first_party, s.name, s.distribution))


_UNDECLARED = object()


def _declared_api(plugin: Any) -> Any:
    """The plugin's ``BLAYERS_PLUGIN_API``: on the loaded object, else on the module defining it."""
    for holder in (plugin, inspect.getmodule(plugin)):
        declared = getattr(holder, PLUGIN_API_ATTRIBUTE, _UNDECLARED)
        if declared is not _UNDECLARED:
            return declared
    return _UNDECLARED


def _api_version_problem(source: _PluginSource, plugin: Any) -> PluginError | None:
    """Why ``plugin`` cannot be used with this plugin API, or ``None`` if it targets it."""
    declared = _declared_api(plugin)
    who = f"plugin {source.name!r} (distribution {source.label})"
    if declared is _UNDECLARED:
        return PluginError(
            f"{who} does not declare the plugin API version it targets; its module must set "
            f"{PLUGIN_API_ATTRIBUTE} = {PLUGIN_API_VERSION} (the version blayers-core "
            f"{__version__} provides)"
        )
    if type(declared) is int and declared == PLUGIN_API_VERSION:
        return None
    if type(declared) is not int:
        advice = f"{PLUGIN_API_ATTRIBUTE} must be an int such as {PLUGIN_API_VERSION}"
    elif declared > PLUGIN_API_VERSION:
        advice = (
            f"upgrade blayers-core (`pip install -U blayers-core`) or install a release of "
            f"{source.distribution} that targets plugin API {PLUGIN_API_VERSION}"
        )
    else:
        advice = (
            f"upgrade {source.distribution} (`pip install -U {source.distribution}`) to a "
            f"release that targets plugin API {PLUGIN_API_VERSION}, or install a blayers-core "
            f"that provides plugin API {declared}"
        )
    return PluginError(
        f"{who} targets plugin API {declared!r}, but blayers-core {__version__} provides plugin "
        f"API {PLUGIN_API_VERSION}; {advice}"
    )


def _conflict_message(name: str, sources: Sequence[_PluginSource]) -> str:
    """Why the distributions ``sources``, which all declare plugin ``name``, are not loaded."""
    labels = [s.label for s in sources]
    declared_by = ", ".join(labels[:-1]) + " and " + labels[-1]
    uninstall = " or ".join(f"`pip uninstall {s.distribution}`" for s in sources)
    return (
        f"the plugin name {name!r} is declared by several distributions, {declared_by}, so none "
        f"of them is loaded. Uninstall all but the one you want ({uninstall}), or name only that "
        f"distribution in {PLUGINS_ENV_VAR}."
    )


def _first_docstring_line(obj: Any) -> str:
    """The first sentence of ``obj``'s docstring, on one line."""
    doc = (inspect.getdoc(obj) or "").strip()
    paragraph = " ".join(doc.split("\n\n")[0].split())
    sentence = paragraph.split(". ")[0]
    return sentence if sentence.endswith(".") or not sentence else sentence + "."


class Registry:
    """Components of every kind, collected from the installed plugins.

    Args:
        search_path: directories to look for installed distributions in; ``None`` (default) means
            ``sys.path``. Tests point it at a folder of fake distributions.
        environ: the environment to read ``BLAYERS_PLUGINS`` from; default ``os.environ``.
        sources: the plugin sources themselves (overrides ``search_path``); used by tests.
    """

    def __init__(
        self,
        *,
        search_path: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None,
        sources: Callable[[], Iterable[_PluginSource]] | None = None,
    ) -> None:
        self._search_path = search_path
        self._environ = os.environ if environ is None else environ
        self._sources = sources
        self._lock = threading.RLock()
        self._loaded = False
        self._components: dict[ComponentKind, list[Component]] = {k: [] for k in COMPONENT_KINDS}
        self._failures: list[PluginFailure] = []
        self._skipped_by_env: list[str] = []
        # Plugin names declared by several distributions -> why none of them is loaded.
        self._conflicts: dict[str, str] = {}
        # (kind, bare name) registered by such a plugin -> its plugin name.
        self._conflicted_names: dict[tuple[ComponentKind, str], str] = {}
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)

    # ------------------------------------------------------------------ loading
    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            notices: list[str] = []
            try:
                self._load_all(notices)
            finally:
                self._loaded = True  # even if a warning filter turns a notice into an error
            for notice in notices:  # warned only once loading is complete and consistent
                warnings.warn(notice, PluginWarning, stacklevel=4)

    def _load_all(self, notices: list[str]) -> None:
        sources = _each_once(
            self._sources()
            if self._sources is not None
            else _installed_plugin_sources(self._search_path)
        )
        sources.sort(key=lambda s: not s.first_party)  # reserved names are known first
        wanted = self._wanted_third_party(sources, notices)
        reserved = {FIRST_PARTY_PLUGIN} | {s.name for s in sources if s.first_party}
        by_name: dict[str, list[_PluginSource]] = {}
        for source in sources:
            if source.first_party:
                by_name.setdefault(source.name, []).append(source)
            elif not (
                wanted is None
                or source.name in wanted
                or normalize_distribution(source.distribution) in wanted
            ):
                self._skipped_by_env.append(source.name)
            elif source.name in reserved:
                self._fail(
                    PluginFailure(
                        source.name,
                        source.distribution,
                        source.version,
                        PluginError(
                            f"the plugin name {source.name!r} is reserved for blayers' "
                            f"first-party plugin (distribution {FIRST_PARTY_DISTRIBUTION!r}); "
                            f"distribution {source.distribution!r} declares it too and is not "
                            f"loaded: uninstall it (`pip uninstall {source.distribution}`)"
                        ),
                    )
                )
            else:
                by_name.setdefault(source.name, []).append(source)
        for name, group in by_name.items():  # first-party first: their names are reserved
            if len(group) == 1:
                self._load_plugin(group[0])
            else:
                self._quarantine(name, group)
        notices.extend(f.describe() for f in self._failures)

    def _quarantine(self, name: str, group: Sequence[_PluginSource]) -> None:
        """Skip every distribution declaring plugin ``name``, and remember what they register.

        Each one is still loaded, in isolation, only to learn its component names, so that a bare
        look-up of one of them raises instead of resolving to another plugin's component, or to
        nothing. Their own load problems are not reported: the clash is what needs fixing.
        """
        group = sorted(group, key=lambda s: (normalize_distribution(s.distribution), s.version))
        message = _conflict_message(name, group)
        self._conflicts[name] = message
        for source in group:
            self._fail(
                PluginFailure(
                    source.name, source.distribution, source.version, PluginConflictError(message)
                )
            )
            staged = self._stage_plugin(
                source, key=f"{name} from {source.distribution}", failures=[], keep=False
            )
            for component in staged or ():
                self._conflicted_names.setdefault((component.kind, component.name), name)

    def _wanted_third_party(
        self, sources: Sequence[_PluginSource], notices: list[str]
    ) -> set[str] | None:
        """Names allowed by ``BLAYERS_PLUGINS``; ``None`` means every plugin.

        Entry-point names are matched exactly, distribution names as PEP 503 compares them; the
        result holds both the names given and their normalized forms.
        """
        raw = self._environ.get(PLUGINS_ENV_VAR)
        if raw is None:
            return None
        wanted = {part.strip() for part in raw.split(",") if part.strip()}
        names = {s.name for s in sources}
        dists = {normalize_distribution(s.distribution) for s in sources}
        known = sorted(names | {s.distribution for s in sources})
        for unknown in sorted(wanted):
            if unknown not in names and normalize_distribution(unknown) not in dists:
                notices.append(
                    f"{PLUGINS_ENV_VAR} names {unknown!r}, but no installed plugin or "
                    f"distribution has that name (installed: {known or 'none'})"
                )
        return wanted | {normalize_distribution(w) for w in wanted}

    def _fail(self, failure: PluginFailure) -> None:
        """Record a skipped plugin or component; it is warned about once loading completes."""
        self._failures.append(failure)

    def _load_plugin(self, source: _PluginSource) -> None:
        staged = self._stage_plugin(source, key=source.name, failures=self._failures, keep=True)
        for component in staged or ():
            self._components[component.kind].append(component)

    def _stage_plugin(
        self, source: _PluginSource, *, key: str, failures: list[PluginFailure], keep: bool
    ) -> list[Component] | None:
        """Load one plugin and collect its components; ``None`` (and a failure) if it is skipped.

        ``key`` is its name in the plugin manager; with ``keep=False`` it is unregistered again.
        """

        def fail(exc: BaseException) -> None:
            failures.append(PluginFailure(source.name, source.distribution, source.version, exc))

        try:
            plugin = source.load()
        except Exception as exc:  # an import error, or a missing attribute
            fail(exc)
            return None
        problem = _api_version_problem(source, plugin)
        if problem is not None:
            fail(problem)
            return None
        try:
            self._pm.register(plugin, name=key)
        except Exception as exc:  # an invalid hook implementation, or one already registered
            fail(exc)
            return None
        staged: list[Component] = []
        try:
            self._pm.check_pending()  # a @hookimpl whose name matches no hook: a typo
            for kind in COMPONENT_KINDS:
                hook = getattr(self._pm.hook, hookspecs.HOOK_FOR_KIND[kind])
                for impl in hook.get_hookimpls():
                    if impl.plugin_name == key:
                        impl.function(register=self._make_register(kind, source, staged, failures))
        except Exception as exc:  # a typo, or a hook that raises, takes its whole plugin down
            self._pm.unregister(name=key)
            fail(exc)
            return None
        if not keep:
            self._pm.unregister(name=key)
        return staged

    def _make_register(
        self,
        kind: ComponentKind,
        source: _PluginSource,
        staged: list[Component],
        failures: list[PluginFailure],
    ) -> hookspecs.Register:
        def register(
            name: str, factory: Callable[..., Any], *, description: str | None = None
        ) -> None:
            problem = self._registration_problem(kind, name, factory, source, staged)
            if problem is not None:
                failures.append(
                    PluginFailure(
                        source.name,
                        source.distribution,
                        source.version,
                        problem,
                        kind=kind,
                        component=str(name),
                    )
                )
                return
            staged.append(
                Component(
                    kind=kind,
                    name=name,
                    plugin=source.name,
                    distribution=source.distribution,
                    version=source.version,
                    factory=factory,
                    description=description or _first_docstring_line(factory),
                    first_party=source.first_party,
                )
            )

        return register

    def _registration_problem(
        self,
        kind: ComponentKind,
        name: Any,
        factory: Any,
        source: _PluginSource,
        staged: Sequence[Component],
    ) -> Exception | None:
        if not isinstance(name, str) or not _NAME_PATTERN.match(name):
            return PluginError(
                f"{kind} name {name!r} is not valid: use lower-case letters, digits and '_', "
                "starting with a letter"
            )
        if not callable(factory):
            return PluginError(f"{kind} {name!r}: the factory {factory!r} is not callable")
        if inspect.isclass(factory):
            needed = {"layer": "__call__", "link": "__call__", "loss": "loss", "method": "run"}.get(
                kind
            )
            if needed is not None and not any(needed in vars(k) for k in inspect.getmro(factory)):
                return PluginError(
                    f"{kind} {name!r}: class {factory.__qualname__} has no {needed}() method, "
                    f"so it does not satisfy the {kind} protocol"
                )
        if any(c.kind == kind and c.name == name for c in staged):
            return PluginError(f"{kind} {name!r} is registered twice by the same plugin")
        if not source.first_party and any(
            c.first_party and c.name == name for c in self._components[kind]
        ):
            return PluginError(
                f"{kind} name {name!r} is reserved by blayers' first-party plugins; "
                f"register it under another name"
            )
        return None

    # --------------------------------------------------------------- inspection
    def components(self, kind: ComponentKind | None = None) -> list[Component]:
        """Every registered component (of one kind, if given), sorted by kind and name."""
        self._ensure_loaded()
        kinds = COMPONENT_KINDS if kind is None else (_check_kind(kind),)
        found = [c for k in kinds for c in self._components[k]]
        return sorted(found, key=lambda c: (COMPONENT_KINDS.index(c.kind), c.name, c.plugin))

    def failures(self) -> list[PluginFailure]:
        """Plugins and components that were skipped, with the exception that caused it."""
        self._ensure_loaded()
        return list(self._failures)

    # ------------------------------------------------------------------ look-up
    def get(self, kind: ComponentKind, name: str) -> Component:
        """The component of ``kind`` called ``name`` (bare or ``plugin:name``).

        Raises:
            ComponentNotFoundError: no such component; the message lists the available names
                and close matches, and chains the cause when a broken plugin may provide it.
            AmbiguousComponentError: several plugins register the bare name.
            PluginConflictError: the name is under, or registered by, a plugin name that several
                distributions declare; the message names them all.
        """
        kind = _check_kind(kind)
        if not isinstance(name, str):
            raise TypeError(f"{kind} name must be a str, got {type(name).__name__}: {name!r}")
        self._ensure_loaded()
        registered = self._components[kind]
        if ":" in name:
            plugin, _, bare = name.partition(":")
            if plugin in self._conflicts:
                raise PluginConflictError(
                    f"{kind} {name!r} cannot be used: {self._conflicts[plugin]}"
                )
            matches = [c for c in registered if c.plugin == plugin and c.name == bare]
        else:
            plugin, bare = None, name
            matches = [c for c in registered if c.name == bare]
            clashing = self._conflicted_names.get((kind, bare))
            if clashing is not None:
                others = "".join(
                    f" {c.qualified_name!r} is unaffected; ask for it by that qualified name."
                    for c in matches
                )
                raise PluginConflictError(
                    f"{kind} {name!r} cannot be used: plugin {clashing!r} registers it, and "
                    f"{self._conflicts[clashing]}{others}"
                )
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            listed = ", ".join(repr(c.qualified_name) for c in matches)
            raise AmbiguousComponentError(
                f"{kind} name {name!r} is registered by several plugins: {listed}. "
                "Use one of these qualified names."
            )
        raise self._not_found(kind, name, plugin, bare)

    def _not_found(
        self, kind: ComponentKind, name: str, plugin: str | None, bare: str
    ) -> ComponentNotFoundError:
        registered = self._components[kind]
        available = sorted({c.name for c in registered} | {c.qualified_name for c in registered})
        bare_names = sorted({c.name for c in registered})
        message = f"no {kind} named {name!r}."
        close = difflib.get_close_matches(name, available, n=3, cutoff=0.6)
        if close:
            message += " Did you mean " + " or ".join(repr(c) for c in close) + "?"
        message += f" Available {kind}s: {', '.join(bare_names) or 'none'}."
        # Which skipped plugin or component could have provided it?
        suspects = [
            f
            for f in self._failures
            if (plugin is None or f.plugin == plugin)
            and (f.component is None or (f.kind == kind and f.component == bare))
        ]
        exact = [f for f in suspects if f.component == bare and f.kind == kind]
        suspects = exact or suspects
        if suspects:
            message += " Skipped plugins that may provide it: " + "; ".join(
                f.describe() for f in suspects
            )
        if plugin is not None and plugin in self._skipped_by_env:
            message += (
                f" Plugin {plugin!r} is installed but not loaded because {PLUGINS_ENV_VAR} "
                "does not name it."
            )
        elif plugin is None and self._skipped_by_env:
            message += (
                f" Not loaded because {PLUGINS_ENV_VAR} does not name them: "
                f"{', '.join(sorted(self._skipped_by_env))}."
            )
        error = ComponentNotFoundError(message)
        if len(suspects) == 1:
            error.__cause__ = suspects[0].error
        return error

    def build(self, kind: ComponentKind, name: str, /, *args: Any, **config: Any) -> Any:
        """Look ``name`` up and call its factory with ``*args, **config``; check the result."""
        component = self.get(kind, name)
        try:
            built = component.factory(*args, **config)
        except TypeError as exc:
            exc.add_note(f"while building {kind} {component.qualified_name!r} with {config!r}")
            raise
        check_protocol(kind, built, origin=component.qualified_name)
        return built


def _check_kind(kind: str) -> ComponentKind:
    if kind not in COMPONENT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(COMPONENT_KINDS)}; got {kind!r}")
    return kind  # type: ignore[return-value]


def check_protocol(kind: ComponentKind, obj: Any, *, origin: str) -> None:
    """Raise :class:`PluginError` if ``obj`` does not satisfy the protocol of ``kind``."""
    required = {
        "layer": ("__call__",),
        "link": ("__call__",),
        "loss": ("loss",),
        "guide": ("__call__",),
        "optimizer": ("init", "update"),
        "method": ("run",),
    }[kind]
    missing = [attr for attr in required if not callable(getattr(obj, attr, None))]
    if missing:
        raise PluginError(
            f"{kind} {origin!r} built {obj!r}, which lacks {', '.join(missing)}() and so "
            f"does not satisfy the {kind} protocol"
        )


_default_registry: Registry | None = None
_default_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry; plugins load on its first look-up."""
    global _default_registry
    if _default_registry is None:
        with _default_lock:
            if _default_registry is None:
                _default_registry = Registry()
    return _default_registry


def components(kind: ComponentKind | None = None) -> list[Component]:
    """Every registered component: kind, name, qualified name, distribution, version, description.

    >>> [c.qualified_name for c in components("link")]  # doctest: +SKIP
    ['blayers:gaussian']
    """
    return get_registry().components(kind)


def plugin_failures() -> list[PluginFailure]:
    """Plugins and components that were skipped in this process, and why."""
    return get_registry().failures()


def layer(name: str, /, **config: Any) -> Any:
    """A configured layer: ``layer("adaptive")("mu", x)`` samples ``mu/scale``, ``mu/beta``."""
    return get_registry().build("layer", name, **config)


def link(name: str, /, **config: Any) -> Any:
    """A configured link: ``link("gaussian")(mu, y)`` samples ``obs/sigma`` and ``obs``."""
    return get_registry().build("link", name, **config)


def loss(name: str, /, **config: Any) -> Any:
    """A configured loss with NumPyro's ELBO contract, e.g. ``loss("batched_elbo")``."""
    return get_registry().build("loss", name, **config)


def guide(name: str, model: Callable[..., Any], /, **config: Any) -> Any:
    """A guide for ``model``, e.g. ``guide("auto_normal", model, init_scale=0.01)``."""
    return get_registry().build("guide", name, model, **config)


def optimizer(name: str, /, learning_rate: Any = 1e-2, **config: Any) -> Any:
    """An optax optimizer, e.g. ``optimizer("adam", learning_rate=1e-3)``."""
    return get_registry().build("optimizer", name, learning_rate, **config)
