"""Exceptions and warnings raised by blayers_core."""

from __future__ import annotations

import sys


class ComponentNotFoundError(LookupError):
    """No registered component of that kind has that name."""

    def __str__(self) -> str:  # LookupError would quote the message like a dict key
        return str(self.args[0]) if self.args else ""


class AmbiguousComponentError(LookupError):
    """A bare name is registered by several plugins: use a qualified ``plugin:name``."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PluginError(RuntimeError):
    """A plugin, or one of its components, failed to load or broke its protocol."""


class PluginConflictError(AmbiguousComponentError, PluginError):
    """Several distributions declare the same plugin name, so none of them is loaded.

    Raised when a name under that plugin's prefix, or a bare name one of them registers, is looked
    up; the message names the plugin and every distribution, and how to resolve the clash.
    """


class PluginWarning(UserWarning):
    """A plugin or component was skipped; the message names it and says why."""


class DataError(ValueError):
    """An argument of ``fit``/``predict`` is unusable as data (wrong shape, dtype or values)."""


class ResultFileError(ValueError):
    """A saved result cannot be read: not a blayers file, corrupt, or of another format version."""


class ModelMismatchError(ValueError):
    """The model given to ``load`` is not the one the saved result was fitted with.

    Its latent sites differ from those the file records (a site missing on either side, or of
    another shape); the message names the first difference.
    """


class DuplicateLayerError(ValueError):
    """One layer name is used by two layer calls in one model, so their sites would collide (or
    two links share their observed site's name).

    Raised when the second call starts, naming the layer and the inputs of both calls (or the
    link and its site); give each call its own name.
    """


#: Packages whose frames a warning skips, to point at the user's call.
LIBRARY_PACKAGES = ("blayers_core", "blayers_plugins")


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a ``warnings.warn`` in the calling function point at the
    first frame outside blayers (the user's ``fit(...)`` line), however deep the call ran."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and (
        frame.f_globals.get("__name__", "").partition(".")[0] in LIBRARY_PACKAGES
    ):
        frame, level = frame.f_back, level + 1
    return level
