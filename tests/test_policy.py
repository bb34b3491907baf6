"""
Tests for L{pop3kit.policy.ServerPolicy}: one value, checked once, from which the
factory, C{twistd pop3kit} and the capabilities take the server's settings.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from pop3kit.backends.memory import MemoryRealm
from pop3kit.core import (
    DEFAULT_SASL_MECHANISMS,
    NEVER,
    Credential,
)
from pop3kit.policy import InvalidPolicy, ServerPolicy
from pop3kit.server import POP3ServerFactory
from pop3kit.tap import Options

#: A wrong value for each field that can be wrong.
WRONG: dict[str, Any] = {
    "timeout": 599,
    "handshakeTimeout": 0,
    "failedLoginDelay": -1,
    "maximumFailedLoginDelay": -0.5,
    "maxFailedLogins": 0,
    "maxBadCommands": 0,
    "maxSASLLineLength": 254,
    "maxUnauthenticated": 0,
    "maxPerClient": 0,
    "loginGrace": -1,
    "loginWindow": -0.5,
    "allowCleartext": "sometimes",
    "sasl": ["PLAIN", "KERBEROS_V4"],
    "loginDelay": -1,
    "expire": "sometimes",
    "implementation": "two\nlines",
    "apopHost": "a b",
}


class ValidationTests(SynchronousTestCase):
    """
    Every field is checked when the policy is made.
    """

    def test_defaults(self) -> None:
        """
        The defaults are RFC 1939's ten minutes, loopback-only cleartext, and the
        default SASL mechanisms.
        """
        policy = ServerPolicy()
        self.assertEqual(policy.timeout, 600.0)
        self.assertEqual(policy.allowCleartext, "loopback")
        self.assertEqual(policy.mechanisms(), DEFAULT_SASL_MECHANISMS)
        self.assertEqual(policy.mechanisms(clientCertificates=True)[-1], "EXTERNAL")

    def test_eachFieldChecked(self) -> None:
        """
        A wrong value in any field is an L{InvalidPolicy} (a L{ValueError}) naming it.
        """
        checkable = {f.name for f in fields(ServerPolicy)} - {"apop"}
        self.assertEqual(set(WRONG), checkable)
        for name, value in WRONG.items():
            with self.assertRaises(InvalidPolicy) as caught:
                ServerPolicy(**{name: value})
            self.assertEqual(caught.exception.field, name)
            self.assertIsInstance(caught.exception, ValueError)
            self.assertTrue(str(caught.exception).startswith(name + " "))

    def test_saslNormalised(self) -> None:
        """
        Mechanism names are kept upper case, in order, as a tuple.
        """
        policy = ServerPolicy(sasl=["cram-md5", "Plain"])
        self.assertEqual(policy.sasl, ("CRAM-MD5", "PLAIN"))
        self.assertEqual(policy.mechanisms(clientCertificates=True), ("CRAM-MD5", "PLAIN"))

    def test_frozen(self) -> None:
        """
        A policy cannot be changed; a changed copy is checked like a new one.
        """
        policy = ServerPolicy()
        self.assertRaises(AttributeError, setattr, policy, "timeout", 1)


class CapabilityTests(SynchronousTestCase):
    """
    The capabilities a connection starts with derive from the policy.
    """

    def test_derived(self) -> None:
        """
        USER and each mechanism follow what can be verified; the announcements follow
        the policy.
        """
        policy = ServerPolicy(loginDelay=60, expire=NEVER, implementation="x", sasl=["CRAM-MD5"])
        capabilities = policy.capabilities(
            {Credential.HASHED}, secure=False, canStartTLS=True, local=False
        )
        self.assertFalse(capabilities.user)
        self.assertEqual(capabilities.sasl, ("CRAM-MD5",))
        self.assertTrue(capabilities.stls)
        self.assertFalse(capabilities.cleartext)
        self.assertEqual(
            (capabilities.loginDelay, capabilities.expire, capabilities.implementation),
            (60, NEVER, "x"),
        )

    def test_cleartext(self) -> None:
        """
        Cleartext passwords are allowed as C{allowCleartext} says.
        """
        for policy, local, allowed in [
            ("never", True, False),
            ("loopback", True, True),
            ("loopback", False, False),
            ("always", False, True),
        ]:
            capabilities = ServerPolicy(allowCleartext=policy).capabilities(  # type: ignore[arg-type]
                {Credential.PASSWORD}, secure=False, canStartTLS=False, local=local
            )
            self.assertEqual(capabilities.cleartext, allowed, (policy, local))


class FactoryTests(SynchronousTestCase):
    """
    L{POP3ServerFactory} takes a policy, or builds one from its keyword arguments.
    """

    def factory(self, **arguments: Any) -> POP3ServerFactory:
        """
        A factory on a memory realm.
        """
        portal = Portal(MemoryRealm(), [InMemoryUsernamePasswordDatabaseDontUse()])
        return POP3ServerFactory(portal, clock=Clock(), **arguments)

    def test_policy(self) -> None:
        """
        The policy given is the factory's, and its fields are the factory's attributes.
        """
        policy = ServerPolicy(timeout=900, apop=True, maxUnauthenticated=7)
        factory = self.factory(policy=policy)
        self.assertIs(factory.policy, policy)
        self.assertEqual(factory.timeout, 900)
        self.assertTrue(factory.apop)
        self.assertEqual(factory.limiter.maxUnauthenticated, 7)

    def test_keywords(self) -> None:
        """
        Keyword arguments build the policy, over the one given if any.
        """
        factory = self.factory(policy=ServerPolicy(timeout=900), apop=True)
        self.assertEqual(factory.policy, ServerPolicy(timeout=900, apop=True))
        self.assertRaises(InvalidPolicy, self.factory, timeout=10)
        self.assertRaises(TypeError, self.factory, noSuchSetting=1)

    def test_settingAttribute(self) -> None:
        """
        Setting a policy attribute of the factory replaces the policy with a checked
        copy.
        """
        factory = self.factory()
        factory.allowCleartext = "always"
        self.assertEqual(factory.policy.allowCleartext, "always")
        with self.assertRaises(InvalidPolicy):
            factory.timeout = 1
        self.assertEqual(factory.timeout, 600)


class OptionsTests(SynchronousTestCase):
    """
    C{twistd pop3kit} builds the policy, and reports a wrong value as a usage error
    naming the option.
    """

    def test_policyBuilt(self) -> None:
        """
        The options' values become the policy's fields.
        """
        options = Options()
        options.parseOptions(["--timeout", "700", "--sasl", "plain", "--apop", "--expire", "0"])
        self.assertEqual(
            options["policy"], ServerPolicy(timeout=700, sasl=("PLAIN",), apop=True, expire=0)
        )

    def test_usageErrors(self) -> None:
        """
        The usage error names the option, with the policy's requirement.
        """
        for arguments, message in [
            (["--timeout", "10"], "--timeout must be at least 600 seconds"),
            (["--max-auth-line", "100"], "--max-auth-line must be at least 255"),
            (["--failed-login-max-delay", "-1"], "--failed-login-max-delay must not be negative"),
            (["--allow-cleartext", "x"], "--allow-cleartext takes one of: never, loopback, always"),
        ]:
            with self.assertRaises(usage.UsageError) as caught:
                Options().parseOptions(arguments)
            self.assertEqual(str(caught.exception), message)
