"""Sphinx configuration of the blayers documentation.

Build it strictly (warnings are errors, every cross-reference must resolve)::

    .venv/bin/pip install -e ".[docs]"
    .venv/bin/sphinx-build -W --keep-going -n -b html docs docs/_build/html
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

project = "blayers"
author = "blayers developers"
copyright = "blayers developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
    "blayers_docs",  # docs/_ext/blayers_docs.py: the page of every registered component
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Markdown pages: $...$ and $$...$$ math, and anchors for "#section" links.
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# Docstrings are Google style (Args:/Returns:/Raises:) with reStructuredText math.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = False  # attrs classes show the types in their signature
autodoc_member_order = "bysource"
python_use_unqualified_type_names = True
autodoc_typehints = "signature"
autodoc_inherit_docstrings = False  # not NumPyro's "To be implemented by subclasses."
# blayers_core.contract._typing.Array is jax.Array; shown by that name instead of its internal module.
autodoc_type_aliases = {"Array": "jax.Array"}

# Strict builds (-n) check every cross-reference. Our own names must resolve; references to
# other libraries (jax, numpyro, optax, the standard library) are left unlinked, since the
# build runs without network access and so without intersphinx inventories. Names inside private
# modules or starting with "_" are not documented by design.
nitpick_ignore_regex = [
    (r"py:.*", r"(?!blayers_core\b|blayers_plugins\b).*"),
    (r"py:.*", r"blayers_\w+(\.\w+)*\._.*"),
]

# MathJax 4 processes macros inside \text{...} (e.g. \text{scale\_prior}), which the docstrings use;
# set explicitly so that the rendering does not depend on the Sphinx version's default.
mathjax_path = "https://cdn.jsdelivr.net/npm/mathjax@4/tex-mml-chtml.js"

html_theme = "furo"
html_title = "blayers"
