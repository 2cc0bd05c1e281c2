"""Sphinx configuration of the offline docs site (tools/docs/build.py renders with it when
quarto is absent). The sources are nbdev's processed notebooks, already executed."""
from __future__ import annotations

import configparser
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
settings = configparser.ConfigParser()
settings.read(ROOT / "settings.ini")
nbdev = settings["DEFAULT"]

project = nbdev["title"]
author = nbdev["author"]
copyright = nbdev["copyright"]
release = version = nbdev["version"]

extensions = ["myst_nb"]
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}

# the notebooks ran in step 1 (in their nbs/ folders); Sphinx only renders their outputs
nb_execution_mode = "off"
nb_merge_streams = True
nb_render_markdown_format = "myst"  # show_doc and the kernel-module tables print Markdown
myst_enable_extensions = ["colon_fence", "attrs_block", "attrs_inline", "deflist"]
myst_heading_anchors = 4
# a notebook may go from its title straight to a show_doc heading (H1 → H3): not an error
suppress_warnings = ["myst.header"]
sys.path.insert(0, str(ROOT))
myst_heading_slug_func = "tools.docs.slugs.heading_slug"  # nbdev's anchors

html_theme = "furo"
html_title = f"{project} {version}"
html_static_path = ["_static"]
html_css_files = ["site.css"]
html_show_sourcelink = False
html_copy_source = False
html_use_index = False  # no Python-domain objects: the index page would be empty
html_theme_options = {"navigation_with_keys": True}
smartquotes = False  # `--no-partitionable` stays two hyphens, quotes stay straight
pygments_style = "friendly"
pygments_dark_style = "monokai"
