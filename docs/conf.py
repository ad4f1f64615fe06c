"""Sphinx configuration: ``sphinx-build -W --keep-going -b html docs docs/_build/html``.

Intersphinx and the network
---------------------------

The pages link to Python's, Trio's and outcome's documentation through intersphinx, which
downloads each project's ``objects.inv``.  A failed download is an untyped Sphinx warning
(it cannot be silenced with ``suppress_warnings``), so a build with ``-W`` on a machine
without network would fail.  ``TPCM_DOCS_OFFLINE`` decides:

* unset (the default): each inventory is probed with one quick request; the reachable ones
  are used, the others are left out (and a line says so);
* ``1``: no inventory is fetched (fast, and the same on every machine);
* ``0``: every inventory is used, unprobed: an unreachable one fails the build (for release
  builds, which must have every link).

A reference to a project left out renders as code without a link.  ``nitpicky`` stays on,
and the references to a left-out project are accepted only if they name an object that
really exists (found by importing it), so a typo still fails the build offline.
"""

from __future__ import annotations

import builtins
import importlib
import os
import sys
import urllib.request
from importlib.metadata import version as installed_version
from typing import Any

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

# -- Project -------------------------------------------------------------------------------

project = "trio_parallel_cm"
author = "trio_parallel_cm developers"
copyright = "trio_parallel_cm developers"
release = installed_version("trio_parallel_cm")
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinxcontrib_trio",
]

exclude_patterns = ["_build", "examples"]
default_role = "py:obj"
primary_domain = "py"
highlight_language = "python3"
pygments_style = "default"
nitpicky = True

# -- autodoc and napoleon ------------------------------------------------------------------

# Signatures are written out on the reference page where the overloads would otherwise
# list a dozen variants; the types are in the docstrings' prose.
autodoc_typehints = "none"
autodoc_member_order = "bysource"
add_module_names = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Render "Returns:" inline: a Google-style "Returns: The values: ..." would otherwise be
# read as a return *type* named "The values".
napoleon_use_rtype = False
# The attributes' annotations name private aliases (``Phase``, ``EventKind``); the
# docstrings spell their values out.
napoleon_attr_annotations = False

# -- HTML ----------------------------------------------------------------------------------

html_theme = "furo"
html_title = "trio_parallel_cm"

# -- intersphinx ---------------------------------------------------------------------------

INVENTORIES: dict[str, tuple[str, str]] = {
    # name: (documentation root, the top-level module(s) it documents, "" for the stdlib)
    "python": ("https://docs.python.org/3", ""),
    "trio": ("https://trio.readthedocs.io/en/stable", "trio"),
    "outcome": ("https://outcome.readthedocs.io/en/latest", "outcome"),
}
intersphinx_timeout = 10


def _reachable(root: str) -> bool:
    request = urllib.request.Request(f"{root}/objects.inv", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=5):
            return True
    except OSError:  # URLError, a timeout, a refused connection...
        return False


def _choose_inventories() -> tuple[dict[str, tuple[str, None]], set[str]]:
    mode = os.environ.get("TPCM_DOCS_OFFLINE", "")
    if mode not in ("", "0", "1"):
        raise ValueError(f"TPCM_DOCS_OFFLINE must be unset, 0 or 1, not {mode!r}")
    used: dict[str, tuple[str, None]] = {}
    left_out: set[str] = set()
    for name, (root, _) in INVENTORIES.items():
        if mode == "0" or (mode == "" and _reachable(root)):
            used[name] = (root, None)
        else:
            left_out.add(name)
    return used, left_out


intersphinx_mapping, LEFT_OUT = _choose_inventories()


# Built-in names of the Python versions newer than the one building the docs.
NEWER_BUILTINS = frozenset({"BaseExceptionGroup", "ExceptionGroup"})


def _exists(target: str) -> bool:
    """Whether ``target`` (``trio.Nursery.start``, ``contextlib.AsyncExitStack``,
    ``BaseExceptionGroup``) names an object that can be imported."""
    if target in NEWER_BUILTINS:
        return True
    parts = target.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            if not hasattr(obj, attribute):
                return False
            obj = getattr(obj, attribute)
        return True
    obj = builtins
    for attribute in parts:
        if not hasattr(obj, attribute):
            return False
        obj = getattr(obj, attribute)
    return True


def _owner(target: str) -> str | None:
    """The inventory that documents ``target``, by its top-level module."""
    top = target.split(".")[0]
    for name, (_, module) in INVENTORIES.items():
        if module and top == module:
            return name
    if top in sys.stdlib_module_names or hasattr(builtins, top) or top in NEWER_BUILTINS:
        return "python"
    return None


def _accept_left_out(app: Sphinx, env: Any, node: Any, contnode: Any) -> Any:
    """Render a reference into a left-out inventory as plain code, if its target exists."""
    if node.get("refdomain") != "py":
        return None
    target: str = node.get("reftarget", "")
    owner = _owner(target)
    if owner in LEFT_OUT and _exists(target):
        return contnode
    return None


def setup(app: Sphinx) -> None:
    if LEFT_OUT:
        logger.info(
            "intersphinx: left out %s (offline or TPCM_DOCS_OFFLINE=1); "
            "references to them render without links",
            ", ".join(sorted(LEFT_OUT)),
        )
    # After intersphinx's own resolver (priority 500) had its chance.
    app.connect("missing-reference", _accept_left_out, priority=900)
