"""
Tests for the files in C{twisted/plugins/}: C{twistd} imports every plugin module to list
them, so they must not import pop3kit until one is used.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from twisted.cred.strcred import ICheckerFactory
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase

from pop3kit.checkers.checkpassword import CheckpasswordCheckerFactory
from pop3kit.checkers.passwdfile import PasswdFileChecker, PasswdFileCheckerFactory

_PLUGINS = Path(__file__).resolve().parent.parent / "twisted" / "plugins"

#: Loads a plugin file by its path (an installed copy of pop3kit may have its own in
#: site-packages, ahead of the source tree's), reads what C{--help-auth} shows, and prints
#: the pop3kit modules imported meanwhile.
_SCRIPT = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("plugin_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
shown = [
    (value.authType, value.argStringFormat, [i.__name__ for i in value.credentialInterfaces])
    for value in vars(module).values()
    if hasattr(value, "authType")
]
imported = sorted(name for name in sys.modules if name.split(".")[0] == "pop3kit")
print(json.dumps({"shown": shown, "imported": imported}))
"""


def loadPlugin(name: str) -> Any:
    """
    Run a plugin file in a fresh interpreter and return what it showed and imported.
    """
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(_PLUGINS / name)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return json.loads(result.stdout)


def pluginModule(name: str) -> Any:
    """
    The plugin module C{name}, loaded from the source tree in this interpreter.
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_plugin_{name}", _PLUGINS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class LazyPluginTests(SynchronousTestCase):
    """
    Importing a plugin module imports no pop3kit module.
    """

    def test_checkersLazy(self) -> None:
        """
        The checker factories show their type, argument format and credential
        interfaces without importing pop3kit.
        """
        loaded = loadPlugin("pop3kit_checkers.py")
        self.assertEqual(loaded["imported"], [])
        self.assertEqual(
            sorted(authType for authType, _, _ in loaded["shown"]),
            ["checkpassword", "passwd-file"],
        )

    def test_serviceMakerLazy(self) -> None:
        """
        The C{twistd pop3kit} service maker does not import pop3kit either.
        """
        self.assertEqual(loadPlugin("pop3kit_plugin.py")["imported"], [])


class CheckerFactoryTests(SynchronousTestCase):
    """
    The stand-ins say what the real checker factories say and make their checkers.
    """

    def test_sameAsReal(self) -> None:
        """
        Each stand-in provides the checker-factory plugin interfaces with the real
        factory's type, help, argument format and credential interfaces.
        """
        module = pluginModule("pop3kit_checkers")
        for standIn, real in [
            (module.passwdFileCheckerFactory, PasswdFileCheckerFactory()),
            (module.checkpasswordCheckerFactory, CheckpasswordCheckerFactory()),
        ]:
            self.assertTrue(ICheckerFactory.providedBy(standIn))
            self.assertTrue(IPlugin.providedBy(standIn))
            for name in ("authType", "authHelp", "argStringFormat", "credentialInterfaces"):
                self.assertEqual(getattr(standIn, name), getattr(real, name), name)

    def test_generateChecker(self) -> None:
        """
        C{generateChecker} makes the real factory's checker, with its argument checks.
        """
        factory = pluginModule("pop3kit_checkers").passwdFileCheckerFactory
        self.assertIsInstance(factory.generateChecker(self.mktemp()), PasswdFileChecker)
        self.assertRaises(ValueError, factory.generateChecker, " ")
