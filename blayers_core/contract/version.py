"""Versions: the library's, and the plugin API's that plugins declare they target."""

from __future__ import annotations

#: The version of the ``blayers-core`` distribution.
__version__ = "0.1.0"

#: The version of the plugin API (:mod:`blayers_core.plugin`). A plugin module declares the one it
#: targets as ``BLAYERS_PLUGIN_API = 1``; the registry skips a plugin that targets another one, or
#: that declares none. Raise it only for a change that breaks existing plugins.
PLUGIN_API_VERSION = 1
