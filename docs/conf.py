"""
Sphinx configuration for the pop3kit documentation.

The narrative pages are Sphinx; the API reference is rendered by pydoctor from the epytext
docstrings, inside the same build (L{pydoctor.sphinx_ext.build_apidocs}), into C{api/} of the
HTML output.  Sphinx's intersphinx is deliberately not enabled.

pydoctor needs the Python and Twisted object inventories to link C{L{None}} or
C{L{Deferred}}; an unresolved link is a warning, and warnings are errors.  It reads them from
the Debian packages C{python3-doc} and C{twisted-doc} when they are installed (as C{.ci/run}
does), so the build needs no network; otherwise it downloads them.  Links in the output point
at the online documentation either way.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from sphinx.application import Sphinx

_ROOT = Path(__file__).resolve().parent.parent
_API_DIR = "api"


def _readVersion() -> str:
    """
    Read C{pop3kit.__version__} without importing pop3kit, so that the docs build needs no
    installed package.
    """
    text = (_ROOT / "pop3kit" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if match is None:
        raise RuntimeError("no __version__ in pop3kit/__init__.py")
    return match.group(1)


project = "pop3kit"
author = "the pop3kit developers"
copyright = "the pop3kit developers"
release = _readVersion()
version = ".".join(release.split(".")[:2])

# docs/_ext holds local extensions: pop3kit_states renders the command legality table and
# the CAPA response from pop3kit.core.
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

extensions = ["pydoctor.sphinx_ext.build_apidocs", "pop3kit_states"]

exclude_patterns = ["_build", "examples"]
html_theme = "alabaster"
html_title = f"pop3kit {release}"


def _inventory(localCopy: str, baseUrl: str) -> str:
    """
    The pydoctor option that loads the C{objects.inv} of the documentation at C{baseUrl}
    (no trailing slash): from C{localCopy} if that file exists, else from C{baseUrl}.
    """
    if Path(localCopy).is_file():
        return f"--intersphinx-file={localCopy}::{baseUrl}"
    return f"--intersphinx={baseUrl}/objects.inv"


# pydoctor renders the API reference into <outdir>/api; api.rst links to it.  It runs with
# --quiet, and anything it still prints (docstring errors, unresolved L{} links) becomes a
# Sphinx warning, so sphinx-build -W fails on a broken docstring too.
pydoctor_args = [
    "--project-name=pop3kit",
    f"--project-version={release}",
    f"--project-base-dir={_ROOT}",
    "--docformat=epytext",
    _inventory("/usr/share/doc/python3-doc/html/objects.inv", "https://docs.python.org/3"),
    _inventory(
        "/usr/share/doc/twisted-doc/html/api/objects.inv",
        "https://docs.twisted.org/en/stable/api",
    ),
    f"--html-output={{outdir}}/{_API_DIR}",
    str(_ROOT / "pop3kit"),
]


def _provideApiDirectory(app: Sphinx, exception: Exception | None) -> None:
    """
    Make sure C{<outdir>/api} exists when pydoctor's build-finished handler runs.

    The extension swaps its output in by renaming whatever Sphinx wrote to C{<outdir>/api};
    it expects a placeholder page there.  Our placeholder is C{api.rst} (C{api.html}), so
    the directory has to be provided.
    """
    if exception is None and app.builder.name == "html":
        (Path(app.outdir) / _API_DIR).mkdir(exist_ok=True)


def _removeApiPlaceholder(app: Sphinx, exception: Exception | None) -> None:
    """
    Remove the empty directory that pydoctor's handler moved L{_provideApiDirectory}'s
    directory to.
    """
    if exception is None and app.builder.name == "html":
        leftover = Path(app.outdir) / f"{_API_DIR}.sphinx_files"
        if leftover.is_dir() and not any(leftover.iterdir()):
            leftover.rmdir()


def setup(app: Sphinx) -> None:
    """
    Run L{_provideApiDirectory} before pydoctor's build-finished handler (priority 500) and
    L{_removeApiPlaceholder} after it.
    """
    app.connect("build-finished", _provideApiDirectory, priority=400)
    app.connect("build-finished", _removeApiPlaceholder, priority=600)
