"""blayers-robust: an example third-party blayers plugin.

The distribution declares one entry point in the ``blayers.plugins`` group::

    [project.entry-points."blayers.plugins"]
    robust = "blayers_robust"

blayers loads this module on the first registry look-up and calls the hooks below, each with a
``register(name, factory, *, description=None)`` callback. The components are then found by name,
bare or qualified with the entry point's name::

    from blayers_core import layer, link

    coef = layer("student_t_prior", df=3.0)     # or layer("robust:student_t_prior", df=3.0)
    lik = link("robust_student_t")              # or link("robust:robust_student_t")

The classes can also be used directly: ``StudentTPriorLayer(df=3.0)("mu", x)``. They subclass
the public bases of :mod:`blayers_core.plugin`, the one module of blayers this package imports.
"""

from __future__ import annotations

from blayers_core.plugin import Register, hookimpl
from blayers_robust.layers import StudentTPriorLayer
from blayers_robust.links import RobustStudentTLink

__version__ = "0.1.0"
#: The plugin API version (blayers_core.plugin.PLUGIN_API_VERSION) this plugin targets.
BLAYERS_PLUGIN_API = 1


@hookimpl
def register_layers(register: Register) -> None:
    """Register the Student-t prior layer; its description is its docstring's first line."""
    register("student_t_prior", StudentTPriorLayer)


@hookimpl
def register_links(register: Register) -> None:
    """Register the robust link with an explicit description."""
    register(
        "robust_student_t",
        RobustStudentTLink,
        description="Student-t likelihood with learned sigma ~ Exponential(1) and df ~ Gamma(2, 0.1).",
    )


__all__ = ["RobustStudentTLink", "StudentTPriorLayer"]
