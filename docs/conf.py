"""Sphinx configuration of the arrayloss documentation site.

Build: ``pip install -e ".[docs]" && python -m sphinx -W -b html docs docs/_build/html``.
The API reference, the per-loss gallery pages and the design-notes index are
generated at build time by ``_ext/arrayloss_docs.py``; the galleries and recipes are
scripts that sphinx-gallery runs, so a broken example fails the build.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The recipes and galleries are tiny: one BLAS/OpenMP thread each is fastest on a
# shared 2-core machine (more threads only contend). Set before NumPy loads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import matplotlib as mpl  # noqa: E402

mpl.use("Agg")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
# Build the docs of this checkout, not of another installed copy.
sys.path.insert(0, str(HERE.parent))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(HERE.parent), *filter(None, [os.environ.get("PYTHONPATH")])]
)

import arrayloss  # noqa: E402

project = "arrayloss"
author = "arrayloss developers"
copyright = "arrayloss developers, MIT licence"
release = version = arrayloss.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "arrayloss_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "**/GALLERY_HEADER.rst",
    "generated/losses",  # gallery sources; sphinx-gallery renders them
    "auto_*/*.ipynb",
    "auto_*/*.py",
    "auto_*/*.zip",
    "auto_*/*.md5",
    "auto_*/*.codeobj.json",
]

# --- API reference ---------------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": False}
autodoc_typehints = "none"  # numpydoc's Parameters section carries the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# A numpydoc "References" section whose entries the text does not cite is still
# rendered in full; Sphinx's "citation is not referenced" is a style nit there.
suppress_warnings = ["ref.citation"]

# --- Markdown --------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# --- Galleries -------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": ["gallery", "generated/losses", "recipes"],
    "gallery_dirs": ["auto_gallery", "auto_losses", "auto_recipes"],
    "filename_pattern": r"/(plot|recipe)_",  # run every plot_ and recipe_ script
    "ignore_pattern": r"/_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "reset_modules": ("matplotlib",),
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "min_reported_time": 1,
    # Each API page of a function shows the examples that call it.
    "doc_module": ("arrayloss",),
    "backreferences_dir": "generated/backrefs",
}

# --- HTML ------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"arrayloss {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_show_sourcelink = False
