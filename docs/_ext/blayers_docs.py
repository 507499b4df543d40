"""Sphinx directive that documents every registered component of one kind.

``.. blayers-components:: layer`` asks the plugin registry for the installed components of that
kind (first-party only, so the page does not depend on what else is installed) and writes one
section per component with its class docstring (generative model, shapes, arguments) through
autodoc. A layer or link added to ``blayers_plugins`` appears on the page without editing it.

Markdown pages also read well on a repository browser, where they link to folders such as
``../examples/robust_plugin``. The site has no page for those, so such a link to a path that
exists in the repository is shown as its text instead of failing the strict build; a link to a
path that does not exist still fails it.

First-party layers accept ``AdaptiveLayer("x", x)`` as a short form of ``AdaptiveLayer()("x", x)``
through a metaclass ``__call__(*args, **kwargs)``, which autodoc would show as the signature; the
signature shown for an attrs class is its constructor's, keyword-only, with ``<factory>`` for a
default built by a factory. A protocol class is shown without typing.Protocol's ``(*args, **kwargs)``.

``:table:`` lists the components as a table of name, description and implementation instead,
for kinds whose implementations mostly live in other libraries (guides, optimizers).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import typing
from pathlib import Path
from typing import Any

import attrs
from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.inspect import signature as sphinx_signature
from sphinx.util.inspect import stringify_signature
from sphinx.util.nodes import nested_parse_with_titles

from blayers_core import components
from blayers_core.contract._typing import COMPONENT_KINDS


def _public_path(obj: Any) -> str:
    """Dotted path of ``obj``, through its top-level package when that re-exports it."""
    if isinstance(obj, functools.partial):
        obj = obj.func
    module, name = obj.__module__, obj.__qualname__
    package = module.split(".")[0]
    if getattr(importlib.import_module(package), name, None) is obj:
        return f"{package}.{name}"
    return f"{module}.{name}"


def _is_first_party_object(path: str) -> bool:
    return path.startswith(("blayers_core.", "blayers_plugins."))


class ComponentsDirective(SphinxDirective):
    """``.. blayers-components:: KIND`` with an optional ``:table:`` flag."""

    required_arguments = 1
    option_spec = {"table": directives.flag}  # noqa: RUF012 - docutils API

    def run(self) -> list[nodes.Node]:
        kind = self.arguments[0]
        if kind not in COMPONENT_KINDS:
            raise self.error(f"unknown component kind {kind!r}; expected one of {COMPONENT_KINDS}")
        found = [c for c in components(kind) if c.first_party]  # type: ignore[arg-type]
        if not found:
            raise self.error(f"no first-party {kind} is registered")
        lines = self._table(kind, found) if "table" in self.options else self._sections(found)
        container = nodes.section() if "table" not in self.options else nodes.container()
        nested_parse_with_titles(
            self.state, StringList(lines, source=f"<{kind} registry>"), container
        )
        return list(container.children)

    @staticmethod
    def _sections(found: list[Any]) -> list[str]:
        lines: list[str] = []
        documented: dict[str, str] = {}  # class path -> the first name registered for it
        for c in found:
            path = _public_path(c.factory)
            if path in documented:  # an alias: documenting the class twice would be an error
                lines += [
                    f"``{c.name}``",
                    "~" * (len(c.name) + 4),
                    "",
                    f"Another name for :ref:`component-{c.kind}-{documented[path]}`.",
                    "",
                ]
                continue
            documented[path] = c.name
            lines += [
                f".. _component-{c.kind}-{c.name}:",
                "",
                f"``{c.name}``",
                "~" * (len(c.name) + 4),
                "",
                f"``{c.kind}({c.name!r}, ...)``, or the class :class:`{path}` "
                f"(qualified name ``{c.qualified_name}``).",
                "",
                f".. autoclass:: {path}",
                "",
            ]
        return lines

    @staticmethod
    def _table(kind: str, found: list[Any]) -> list[str]:
        lines = [
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 20 50 30",
            "",
            "   * - name",
            "     - description",
            "     - implemented by",
        ]
        for c in found:
            path = _public_path(c.factory)
            target = f":class:`{path}`" if _is_first_party_object(path) else f"``{path}``"
            if isinstance(c.factory, functools.partial):  # e.g. a guide with init_loc_fn set
                bound = ", ".join(
                    f"{k}={getattr(v, '__name__', None) or repr(v)}"
                    for k, v in c.factory.keywords.items()
                )
                target += f" with ``{bound}``"
            lines += [f"   * - ``{c.name}``", f"     - {c.description}", f"     - {target}"]
        return lines


def _unlink_repository_paths(app: Sphinx, doctree: nodes.document) -> None:
    """Show Markdown links to repository paths outside the docs as their plain text."""
    env = app.env
    source_dir = Path(env.doc2path(env.docname)).parent
    docs = Path(env.srcdir).resolve()
    for node in list(doctree.findall(pending_xref)):
        target = str(node.get("reftarget", "")).split("#")[0]
        if node.get("reftype") != "myst" or not target or "://" in target:
            continue
        path = (source_dir / target).resolve()
        if path.is_relative_to(docs.parent) and not path.is_relative_to(docs) and path.exists():
            node.replace_self(node.children)


#: A dotted name outside blayers, e.g. ``collections.abc.Sequence``: shown by its last part.
_OTHER_MODULES = re.compile(r"(?<![\w.])(?!blayers_)(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)")


@attrs.frozen
class _Shown:
    """A default value shown by its text (``<factory>``, a class name) instead of its repr."""

    text: str

    def __repr__(self) -> str:
        return self.text


def _shown_default(default: Any) -> Any:
    if default is attrs.NOTHING:
        return _Shown("<factory>")
    if inspect.isclass(default) and default is not inspect.Parameter.empty:
        return _Shown(default.__name__)
    return default


def _attrs_class_signature(
    app: Sphinx,
    what: str,
    name: str,
    obj: Any,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str | None] | None:
    """The constructor's signature of an attrs class, with readable defaults; none for a protocol."""
    if what != "class" or not inspect.isclass(obj):
        return None
    if getattr(obj, "_is_protocol", False):  # typing.Protocol's (*args, **kwargs) says nothing
        return "", None
    if not attrs.has(obj) and type(obj).__call__ is not type.__call__:
        return "", None  # a base class whose metaclass __call__(*args, **kwargs) says nothing
    if not attrs.has(obj):
        return None
    sig = sphinx_signature(obj.__init__, bound_method=True)
    try:  # the class's annotations, evaluated in its module (attrs' __init__ has other globals)
        hints = typing.get_type_hints(obj)
    except Exception:  # an annotation that cannot be evaluated is shown as written
        hints = {}
    params = [
        p.replace(annotation=hints.get(p.name, p.annotation), default=_shown_default(p.default))
        for p in sig.parameters.values()
    ]
    shown = stringify_signature(sig.replace(parameters=params), show_return_annotation=False)
    return _OTHER_MODULES.sub(r"\1", shown), None


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("blayers-components", ComponentsDirective)
    app.connect("doctree-read", _unlink_repository_paths)
    app.connect("autodoc-process-signature", _attrs_class_signature)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
