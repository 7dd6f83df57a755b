"""Sphinx configuration of the course's static HTML edition (built by `python3 course.py book`).

The pages are the stored, executed notebooks (myst-nb, no re-execution) plus a contents page and an
exercises page that tools/book.py writes into the staging folder. Everything the pages need is served
from the built site: MathJax comes from the `sphinx-mathjax-offline` package, the theme (furo) ships
its own assets, and no page loads anything from another host.
"""
project = "tinyattn"
author = "the tinyattn course"
copyright = "tinyattn contributors"
extensions = ["myst_nb", "sphinx-mathjax-offline"]
nb_execution_mode = "off"                 # the stored outputs are the ones CI checked with nbval
nb_output_stderr = "remove"
myst_enable_extensions = ["dollarmath", "amsmath"]
html_theme = "furo"
html_title = "tinyattn: attention from scratch"
html_static_path = []
exclude_patterns = ["_build"]
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]
html_show_sourcelink = False
html_copy_source = False
