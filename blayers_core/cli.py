"""The ``blayers`` command: what is installed, what a component takes, and whether plugins work.

::

    blayers plugins              # installed plugins, their components, versions and load errors
    blayers describe adaptive    # docstring, constructor parameters and origin of a component
    blayers describe --kind layer blayers:adaptive
    blayers doctor               # run the conformance kit on every component; exit 1 on failures
    blayers doctor --quick       # the same without the short fits
    blayers doctor adaptive      # only the components named

Every command takes ``--json`` for machine-readable output. ``python -m blayers_core`` is the
same command.

``describe`` takes a bare name (``adaptive``) or a qualified one (``plugin:name``, as everywhere
in blayers). It searches every kind; when the name exists in several kinds (a layer and a link
both called ``student_t``), ``--kind`` picks one.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import json
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from blayers_core.contract._typing import COMPONENT_KINDS, ComponentKind
from blayers_core.contract.errors import (
    AmbiguousComponentError,
    ComponentNotFoundError,
    PluginWarning,
)
from blayers_core.contract.registry import Component, Registry, get_registry
from blayers_core.testing import CheckResult, run_checks

# ------------------------------------------------------------------------------ helpers


def _unwrap(factory: Any) -> Any:
    """The function behind a ``functools.partial`` (for its docstring and module)."""
    while hasattr(factory, "func") and hasattr(factory, "keywords"):
        factory = factory.func
    return factory


def _show(value: Any) -> str:
    """A short, readable rendering of a default value."""
    from numpyro.distributions import Distribution

    if isinstance(value, Distribution):
        args = ", ".join(
            f"{name}={_show_number(getattr(value, name))}" for name in value.arg_constraints
        )
        return f"{type(value).__name__}({args})"
    if inspect.isclass(value) or inspect.isfunction(value):
        return value.__qualname__
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _show_number(value: Any) -> str:
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return "<array>"


def _annotation(annotation: Any) -> str | None:
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):
        return annotation
    return getattr(annotation, "__name__", None) or str(annotation)


def parameters(factory: Any) -> list[dict[str, Any]]:
    """Constructor parameters of a factory: name, annotation, default (``None`` if required)."""
    target = _unwrap(factory)
    if inspect.isclass(factory) and attrs.has(factory):
        out = []
        for field in attrs.fields(factory):
            if not field.init:
                continue
            default = field.default
            if default is attrs.NOTHING:
                shown, required = None, True
            elif isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                shown, required = _factory_default(default), False
            else:
                shown, required = _show(default), False
            out.append(
                {
                    "name": field.alias or field.name,
                    "annotation": _annotation(field.type),
                    "default": shown,
                    "required": required,
                }
            )
        return out
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        try:
            signature = inspect.signature(target)
        except (TypeError, ValueError):
            return []
    out = []
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            prefix = "*" if param.kind is param.VAR_POSITIONAL else "**"
            out.append(
                {
                    "name": prefix + param.name,
                    "annotation": None,
                    "default": None,
                    "required": False,
                }
            )
            continue
        required = param.default is param.empty
        out.append(
            {
                "name": param.name,
                "annotation": _annotation(param.annotation),
                "default": None if required else _show(param.default),
                "required": required,
            }
        )
    return out


def _factory_default(default: Any) -> str:
    if default.takes_self:
        return "<computed>"
    try:
        return _show(default.factory())
    except Exception:  # a default that cannot be built here is still a default
        return "<computed>"


def _origin(component: Component) -> dict[str, Any]:
    target = _unwrap(component.factory)
    return {
        "plugin": component.plugin,
        "distribution": component.distribution,
        "version": component.version,
        "first_party": component.first_party,
        "module": getattr(target, "__module__", None),
        "object": getattr(target, "__qualname__", type(target).__qualname__),
    }


def _registry_of(registry: Registry | None) -> Registry:
    return get_registry() if registry is None else registry


def _load(registry: Registry) -> tuple[list[Component], list[Any]]:
    """Components and failures; the failures are reported, not also warned about."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        return registry.components(), registry.failures()


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


# ------------------------------------------------------------------------------ plugins


def plugins_report(registry: Registry) -> list[dict[str, Any]]:
    """Installed plugins with their components and the errors that made any be skipped.

    One entry per plugin and distribution: two distributions that declare the same plugin name
    (a conflict, or an impostor of the first-party plugin) are listed apart, each with its error.
    """
    found, failures = _load(registry)
    plugins: dict[tuple[str, str], dict[str, Any]] = {}

    def entry(plugin: str, distribution: str, version: str, first_party: bool) -> dict[str, Any]:
        return plugins.setdefault(
            (plugin, distribution),
            {
                "plugin": plugin,
                "distribution": distribution,
                "version": version,
                "first_party": first_party,
                "components": [],
                "errors": [],
            },
        )

    for c in found:
        entry(c.plugin, c.distribution, c.version, c.first_party)["components"].append(
            {"kind": c.kind, "name": c.name, "description": c.description}
        )
    for f in failures:
        entry(f.plugin, f.distribution, f.version, False)["errors"].append(
            {"kind": f.kind, "component": f.component, "error": _error_text(f.error)}
        )
    return sorted(
        plugins.values(), key=lambda p: (not p["first_party"], p["plugin"], p["distribution"])
    )


_PLURAL = {"loss": "losses"}
_PLURAL.update({kind: f"{kind}s" for kind in COMPONENT_KINDS if kind not in _PLURAL})


def _print_plugins(report: list[dict[str, Any]]) -> None:
    if not report:
        print("no plugins installed")
    for p in report:
        party = ", first-party" if p["first_party"] else ""
        print(f"{p['plugin']}  (distribution {p['distribution']} {p['version']}{party})")
        for kind in COMPONENT_KINDS:
            names = [c["name"] for c in p["components"] if c["kind"] == kind]
            if names:
                print(f"  {_PLURAL[kind] + ':':<12}{', '.join(names)}")
        for e in p["errors"]:
            what = "plugin skipped" if e["component"] is None else f"{e['kind']} {e['component']}"
            print(f"  ERROR {what}: {e['error']}")


# ------------------------------------------------------------------------------ describe


class CommandError(Exception):
    """A user error: the message is printed and the command exits with status 2."""


def find_component(registry: Registry, name: str, kind: ComponentKind | None) -> Component:
    """The component called ``name`` (bare or ``plugin:name``), in ``kind`` or in any kind."""
    found, _ = _load(registry)
    kinds = COMPONENT_KINDS if kind is None else (kind,)
    matches = []
    for k in kinds:
        try:
            matches.append(registry.get(k, name))
        except ComponentNotFoundError:
            continue
        except AmbiguousComponentError as exc:
            raise CommandError(str(exc)) from exc
    if len(matches) == 1:
        return matches[0]
    if matches:
        listed = ", ".join(f"{c.kind} {c.qualified_name}" for c in matches)
        raise CommandError(
            f"{name!r} names components of several kinds ({listed}); choose one with --kind, "
            f"e.g. blayers describe --kind {matches[0].kind} {name}"
        )
    pool = sorted({c.name for c in found if c.kind in kinds} | {c.qualified_name for c in found})
    close = difflib.get_close_matches(name, pool, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    where = "any kind" if kind is None else f"kind {kind!r}"
    raise CommandError(
        f"no component named {name!r} in {where}.{hint} `blayers plugins` lists them all."
    )


def describe_report(component: Component) -> dict[str, Any]:
    """What ``blayers describe`` prints: docstring, parameters and origin of a component."""
    return {
        "kind": component.kind,
        "name": component.name,
        "qualified_name": component.qualified_name,
        "description": component.description,
        "doc": inspect.getdoc(_unwrap(component.factory)) or "",
        "parameters": parameters(component.factory),
        "origin": _origin(component),
    }


def _print_describe(report: dict[str, Any]) -> None:
    origin = report["origin"]
    print(f"{report['kind']} {report['qualified_name']}: {report['description']}")
    print(
        f"from plugin {origin['plugin']!r}, distribution {origin['distribution']} "
        f"{origin['version']}, {origin['module']}.{origin['object']}"
    )
    print("\nParameters:")
    if not report["parameters"]:
        print("  (none)")
    for p in report["parameters"]:
        annotation = p["annotation"]
        typed = f": {annotation}" if annotation and len(annotation) <= 40 else ""
        default = (
            " (required)"
            if p["required"]
            else (f" = {p['default']}" if p["default"] is not None else "")
        )
        print(f"  {p['name']}{typed}{default}")
    if report["doc"]:
        print("\n" + report["doc"])


# ------------------------------------------------------------------------------ doctor


def _summary(results: Sequence[CheckResult], seconds: float) -> str:
    """``9 checks passed, 1 skipped (2.1 s)``, or the failures, one after the other."""
    failed = [r for r in results if r.status == "fail"]
    if failed:
        return " | ".join(r.detail for r in failed)
    skipped = sum(r.status == "skip" for r in results)
    passed = len(results) - skipped
    extra = f", {skipped} skipped" if skipped else ""
    return f"{passed} checks passed{extra} ({seconds:.1f} s)"


def check_component(component: Component, *, quick: bool = False) -> tuple[bool, str]:
    """Run the conformance kit (:mod:`blayers_core.testing`) on one component: ``(passed,
    detail)``, the detail naming each failed check."""
    start = time.perf_counter()
    results = run_checks(component, quick=quick)
    passed = all(r.passed for r in results)
    return passed, _summary(results, time.perf_counter() - start)


def _component_entry(component: Component, quick: bool) -> dict[str, Any]:
    start = time.perf_counter()
    results = run_checks(component, quick=quick)
    seconds = time.perf_counter() - start
    return {
        "kind": component.kind,
        "name": component.qualified_name,
        "distribution": component.distribution,
        "version": component.version,
        "passed": all(r.passed for r in results),
        "detail": _summary(results, seconds),
        "seconds": round(seconds, 3),
        "results": [
            {
                "check": r.check,
                "status": r.status,
                "detail": r.detail,
                "seconds": round(r.seconds, 3),
            }
            for r in results
        ],
    }


def doctor_report(
    registry: Registry,
    *,
    quick: bool = False,
    names: Sequence[str] = (),
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Every component run through the conformance kit, and every plugin that failed to load.

    Args:
        registry: the registry to check.
        quick: leave out the checks that fit a model.
        names: check only these components (bare or ``plugin:name``); default all.
        progress: called with each component's entry as soon as it is checked.
    """
    found, failures = _load(registry)
    if names:
        wanted = set(names)
        found = [c for c in found if c.name in wanted or c.qualified_name in wanted]
        known = {c.name for c in found} | {c.qualified_name for c in found}
        unknown = sorted(wanted - known)
        if unknown:
            raise CommandError(
                f"no component named {', '.join(map(repr, unknown))}; `blayers plugins` lists "
                "them all"
            )
        failures = [f for f in failures if f.component in wanted]
    checks = []
    for component in found:
        checks.append(_component_entry(component, quick))
        if progress is not None:
            progress(checks[-1])
    for f in failures:
        checks.append(
            {
                "kind": f.kind or "plugin",
                "name": f.plugin if f.component is None else f"{f.plugin}:{f.component}",
                "distribution": f.distribution,
                "version": f.version,
                "passed": False,
                "detail": "skipped when loading: " + _error_text(f.error),
                "seconds": 0.0,
                "results": [],
            }
        )
        if progress is not None:
            progress(checks[-1])
    failed = sum(not c["passed"] for c in checks)
    return {
        "ok": failed == 0,
        "quick": quick,
        "checked": len(checks),
        "failed": failed,
        "checks": checks,
    }


def _print_doctor_entry(entry: dict[str, Any]) -> None:
    status = "pass" if entry["passed"] else "FAIL"
    print(f"{status}  {entry['kind']:<10}{entry['name']:<32}", end="")
    failed = [r for r in entry["results"] if r["status"] == "fail"]
    if not failed:
        print(entry["detail"], flush=True)
        return
    print(f"{len(failed)} of {len(entry['results'])} checks failed")
    for r in failed:
        print(f"      {r['detail']}", flush=True)


def _print_doctor_summary(report: dict[str, Any]) -> None:
    how = " (quick: without the fits)" if report["quick"] else ""
    print(f"\n{report['checked']} checked{how}, {report['failed']} failed")


# ------------------------------------------------------------------------------ main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blayers", description="Inspect and check installed blayers plugins."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser(
        "plugins", help="list installed plugins, their components, versions and load errors"
    )
    describe = commands.add_parser(
        "describe", help="a component's docstring, constructor parameters and origin"
    )
    describe.add_argument("name", help="bare (adaptive) or qualified (blayers:adaptive) name")
    describe.add_argument(
        "--kind", choices=COMPONENT_KINDS, help="when the name is in several kinds"
    )
    doctor = commands.add_parser(
        "doctor",
        help="run the conformance kit on every installed component (exit 1 on failures)",
    )
    doctor.add_argument(
        "names", nargs="*", metavar="NAME", help="check only these components (default: all)"
    )
    doctor.add_argument(
        "--quick", action="store_true", help="leave out the checks that fit a model (faster)"
    )
    for command in (listing, describe, doctor):
        command.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: Sequence[str] | None = None, *, registry: Registry | None = None) -> int:
    """Run the ``blayers`` command; returns the exit status (0 ok, 1 failed checks, 2 misuse).

    Args:
        argv: the arguments (default ``sys.argv[1:]``).
        registry: the registry to inspect (default: the process-wide one).
    """
    args = _parser().parse_args(argv)
    reg = _registry_of(registry)
    report: Any
    try:
        if args.command == "plugins":
            report = plugins_report(reg)
            printer: Callable[[Any], None] = _print_plugins
            status = 0
        elif args.command == "describe":
            report = describe_report(find_component(reg, args.name, args.kind))
            printer, status = _print_describe, 0
        else:
            progress = None if args.json else _print_doctor_entry
            report = doctor_report(reg, quick=args.quick, names=args.names, progress=progress)
            printer, status = _print_doctor_summary, 0 if report["ok"] else 1
    except CommandError as exc:
        if args.json:
            print(json.dumps({"error": str(exc)}))
        else:
            print(f"blayers {args.command}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        printer(report)
    return status
