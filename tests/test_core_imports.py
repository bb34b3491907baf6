"""
Tests that L{pop3kit.core} imports only the standard library.

The sans-IO core must be usable and testable without Twisted or any other third-party
package, so every module under C{pop3kit/core/} may import only standard-library modules and
other modules of C{pop3kit.core}.  The check reads the source with L{ast}; imports under
C{if TYPE_CHECKING:} count too, and so do dynamic imports (C{__import__},
C{importlib.import_module}), which are refused outright because they cannot be checked.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import pop3kit.core

_CORE = "pop3kit.core"


def _isAllowed(module: str) -> bool:
    """
    Whether C{module}, an absolute dotted module name, may be imported by the core.
    """
    if module == _CORE or module.startswith(_CORE + "."):
        return True
    return module.split(".")[0] in sys.stdlib_module_names


def _resolveRelative(package: str, level: int, module: str | None) -> str:
    """
    The absolute name a relative import C{from <level dots><module> import ...} refers to,
    from inside C{package}.
    """
    parts = package.split(".")
    if level > len(parts):
        return "." * level + (module or "")
    base = parts[: len(parts) - level + 1]
    return ".".join(base + ([module] if module else []))


def forbiddenImports(source: str, package: str, filename: str = "<source>") -> list[str]:
    """
    Describe every import in C{source} that the core may not make.

    @param source: Python source of one module.
    @param package: The package the module is in (C{pop3kit.core} for C{_errors.py}; the
        package itself for an C{__init__.py}), to resolve relative imports.
    @param filename: Used in the descriptions.
    @return: One C{"file:line: module"} description per forbidden import, in source order.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            modules = [_resolveRelative(package, node.level, node.module)]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        elif isinstance(node, ast.Call):
            name = _calledName(node)
            if name in ("__import__", "import_module"):
                found.append((node.lineno, f"dynamic import via {name}()"))
            continue
        else:
            continue
        found.extend((node.lineno, module) for module in modules if not _isAllowed(module))
    return [f"{filename}:{line}: {what}" for line, what in sorted(found)]


def _calledName(call: ast.Call) -> str | None:
    """
    The name of the function C{call} calls (C{f} in C{f()} and in C{x.f()}), if it has one.
    """
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


class ForbiddenImportsTests(SynchronousTestCase):
    """
    L{forbiddenImports} tells standard-library and core imports from everything else.
    """

    def test_standardLibraryAllowed(self) -> None:
        """
        Absolute imports of standard-library modules and submodules are allowed.
        """
        source = "import os\nimport collections.abc\nfrom __future__ import annotations\n"
        self.assertEqual(forbiddenImports(source, _CORE), [])

    def test_coreAllowed(self) -> None:
        """
        Absolute and relative imports that stay inside C{pop3kit.core} are allowed.
        """
        source = (
            "from pop3kit.core._errors import POP3Error\n"
            "import pop3kit.core\n"
            "from . import _errors\n"
            "from ._states import State\n"
        )
        self.assertEqual(forbiddenImports(source, _CORE), [])

    def test_thirdPartyForbidden(self) -> None:
        """
        Third-party imports are reported with their line, even under C{TYPE_CHECKING}.
        """
        source = (
            "import os\n"
            "from twisted.internet import defer\n"
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    import zope.interface\n"
        )
        self.assertEqual(
            forbiddenImports(source, _CORE, "x.py"),
            ["x.py:2: twisted.internet", "x.py:5: zope.interface"],
        )

    def test_restOfPop3kitForbidden(self) -> None:
        """
        Imports of pop3kit outside the core, absolute or relative, are reported.
        """
        source = "import pop3kit\nfrom pop3kit import server\nfrom .. import errors\n"
        self.assertEqual(
            forbiddenImports(source, _CORE, "x.py"),
            ["x.py:1: pop3kit", "x.py:2: pop3kit", "x.py:3: pop3kit"],
        )

    def test_dynamicImportForbidden(self) -> None:
        """
        Dynamic imports are reported, since their target cannot be checked.
        """
        source = "import importlib\nimportlib.import_module('twisted')\n__import__('os')\n"
        self.assertEqual(
            forbiddenImports(source, _CORE, "x.py"),
            [
                "x.py:2: dynamic import via import_module()",
                "x.py:3: dynamic import via __import__()",
            ],
        )


class CoreImportsTests(SynchronousTestCase):
    """
    Every module of C{pop3kit.core} imports only the standard library and the core itself.
    """

    def test_onlyStandardLibrary(self) -> None:
        """
        No module under C{pop3kit/core/} makes a forbidden import.
        """
        coreDirectory = Path(pop3kit.core.__file__).parent
        sources = sorted(coreDirectory.rglob("*.py"))
        self.assertIn(coreDirectory / "__init__.py", sources)

        found: list[str] = []
        for path in sources:
            # The package a module (or an __init__.py) is in is the directory it is in.
            package = ".".join((_CORE, *path.relative_to(coreDirectory).parts[:-1]))
            found.extend(forbiddenImports(path.read_text(encoding="utf-8"), package, str(path)))
        self.assertEqual(found, [], "pop3kit.core may import only the standard library")
