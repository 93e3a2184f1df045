"""Sphinx configuration of the fnn docs: ``python -m sphinx -W -b html docs docs/_build/html``."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))  # the checkout's fnn, installed or not

import fnn  # noqa: E402

project = "fnn"
author = "the fnn authors"
copyright = "the fnn authors"
release = version = fnn.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",   # the Google-style docstrings
    "sphinx.ext.mathjax",    # their .. math:: blocks
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "myst_parser",           # Markdown pages, and README sections included into them
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = f"fnn {release}"

autodoc_member_order = "bysource"
autodoc_typehints = "description"   # signatures stay readable; types go beside each argument
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # NamedTuple "Attributes:" as a field list: autodoc documents the fields
myst_heading_anchors = 3

# No network in CI: intersphinx has no inventories to fetch, so none are configured; the
# extension stays for :external: references a page may add with a local inventory.
intersphinx_mapping: dict = {}
nitpicky = False
