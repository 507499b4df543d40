"""The entry-point registry: finds plugins, collects their components, resolves names.

Plugins are found through one entry-point group, ``blayers.plugins``. The first-party plugins that
ship with blayers (distribution ``blayers``) are found the same way, never imported by name.
Each plugin implements the hooks of :mod:`blayers_core.contract.hookspecs`; every component it registers
gets a qualified name ``<plugin>:<name>`` where ``<plugin>`` is the entry point's name.

Rules
-----
* The bare name works when exactly one plugin registers it; otherwise the qualified name is needed.
* First-party names are reserved: a third-party plugin that registers one is refused with a
  :class:`~blayers_core.contract.errors.PluginWarning`; its other components still load.
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
    PluginError,
    PluginWarning,
)

#: Distribution whose plugins are first-party; their component names are reserved.
FIRST_PARTY_DISTRIBUTION = "blayers-core"
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
        return self.distribution == FIRST_PARTY_DISTRIBUTION


def _installed_plugin_sources(search_path: Sequence[str] | None) -> list[_PluginSource]:
    """Every entry point of the plugin group, first-party first, each distribution once."""
    found: dict[tuple[str, str], _PluginSource] = {}
    dists = (
        metadata.distributions()
        if search_path is None
        else metadata.distributions(path=list(search_path))
    )
    for dist in dists:
        dist_name = dist.metadata["Name"] or "<unknown>"
        for ep in dist.entry_points:
            if ep.group != hookspecs.ENTRY_POINT_GROUP:
                continue
            key = (dist_name, ep.name)
            if key not in found:  # the first on the path wins, as for imports
                found[key] = _PluginSource(ep.name, dist_name, dist.version, ep.load)
    return sorted(found.values(), key=lambda s: (not s.first_party, s.name, s.distribution))


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
        sources = (
            list(self._sources())
            if self._sources is not None
            else _installed_plugin_sources(self._search_path)
        )
        sources.sort(key=lambda s: not s.first_party)  # reserved names are known first
        wanted = self._wanted_third_party(sources, notices)
        owners: dict[str, str] = {}
        for source in sources:
            if not (
                source.first_party or wanted is None or {source.name, source.distribution} & wanted
            ):
                self._skipped_by_env.append(source.name)
            elif source.name in owners:
                self._fail(
                    PluginFailure(
                        source.name,
                        source.distribution,
                        source.version,
                        PluginError(
                            f"the plugin name {source.name!r} is already taken by distribution "
                            f"{owners[source.name]!r}; rename the entry point"
                        ),
                    )
                )
            else:
                owners[source.name] = source.distribution
                self._load_plugin(source)
        notices.extend(f.describe() for f in self._failures)

    def _wanted_third_party(
        self, sources: Sequence[_PluginSource], notices: list[str]
    ) -> set[str] | None:
        """Names allowed by ``BLAYERS_PLUGINS``; ``None`` means every plugin."""
        raw = self._environ.get(PLUGINS_ENV_VAR)
        if raw is None:
            return None
        wanted = {part.strip() for part in raw.split(",") if part.strip()}
        known = {s.name for s in sources} | {s.distribution for s in sources}
        for unknown in sorted(wanted - known):
            notices.append(
                f"{PLUGINS_ENV_VAR} names {unknown!r}, but no installed plugin or distribution "
                f"has that name (installed: {sorted(known) or 'none'})"
            )
        return wanted

    def _fail(self, failure: PluginFailure) -> None:
        """Record a skipped plugin or component; it is warned about once loading completes."""
        self._failures.append(failure)

    def _load_plugin(self, source: _PluginSource) -> None:
        try:
            plugin = source.load()
            self._pm.register(plugin, name=source.name)
        except Exception as exc:  # an import error or invalid hook implementation
            self._fail(PluginFailure(source.name, source.distribution, source.version, exc))
            return
        try:
            self._pm.check_pending()  # a @hookimpl whose name matches no hook: a typo
        except pluggy.PluginValidationError as exc:
            self._pm.unregister(name=source.name)
            self._fail(PluginFailure(source.name, source.distribution, source.version, exc))
            return
        staged: list[Component] = []
        try:
            for kind in COMPONENT_KINDS:
                hook = getattr(self._pm.hook, hookspecs.HOOK_FOR_KIND[kind])
                for impl in hook.get_hookimpls():
                    if impl.plugin_name == source.name:
                        impl.function(register=self._make_register(kind, source, staged))
        except Exception as exc:  # a hook that raises takes its whole plugin down
            self._pm.unregister(name=source.name)
            self._fail(PluginFailure(source.name, source.distribution, source.version, exc))
            return
        for component in staged:
            self._components[component.kind].append(component)

    def _make_register(
        self, kind: ComponentKind, source: _PluginSource, staged: list[Component]
    ) -> hookspecs.Register:
        def register(
            name: str, factory: Callable[..., Any], *, description: str | None = None
        ) -> None:
            problem = self._registration_problem(kind, name, factory, source, staged)
            if problem is not None:
                self._fail(
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
            needed = {"layer": "__call__", "link": "__call__", "loss": "loss"}.get(kind)
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
        """
        kind = _check_kind(kind)
        if not isinstance(name, str):
            raise TypeError(f"{kind} name must be a str, got {type(name).__name__}: {name!r}")
        self._ensure_loaded()
        registered = self._components[kind]
        if ":" in name:
            plugin, _, bare = name.partition(":")
            matches = [c for c in registered if c.plugin == plugin and c.name == bare]
        else:
            plugin, bare = None, name
            matches = [c for c in registered if c.name == bare]
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
