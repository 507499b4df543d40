"""First-party layers (being written)."""

from __future__ import annotations

from typing import Any

#: Registered name -> layer class, merged into `blayers_plugins.layers.LAYERS`.
REGISTERED: dict[str, Any] = {}
