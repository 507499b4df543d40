"""First-party links beyond the Gaussian (being written)."""

from __future__ import annotations

from typing import Any

#: Registered name -> link class, merged into `blayers_plugins.links.LINKS`.
REGISTERED: dict[str, Any] = {}
