"""Print the README command that follows ``<!-- NAME-command -->`` (e.g. ``test``, ``main``)."""

import re
import sys
from pathlib import Path

name = sys.argv[1]
readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
match = re.search(rf"<!-- {name}-command -->\s*```bash\n(.+?)\n```", readme, re.S)
if match is None:
    sys.exit(f"README.md has no '<!-- {name}-command -->' block")
print(match.group(1).strip())
