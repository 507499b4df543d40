"""``python -m blayers_core``: the ``blayers`` command."""

from blayers_core.cli import main

raise SystemExit(main())
