"""
Property tests for L{pop3kit.sasl}: whatever a client sends, in whatever state, a server
mechanism answers with a step, L{AuthenticationFailed} or L{MalformedSASLResponse}, and
nothing else; likewise a client mechanism facing any server.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from pop3kit.errors import AuthenticationFailed
from pop3kit.sasl import (
    CLIENT_PREFERENCE,
    SERVER_MECHANISMS,
    Challenge,
    CheckCredentials,
    MalformedSASLChallenge,
    MalformedSASLResponse,
    NeedSCRAMKeys,
    SCRAMKeys,
    ServerMechanism,
    Verified,
    clientMechanism,
    serverMechanism,
)

STEPS = (Challenge, NeedSCRAMKeys, CheckCredentials, Verified)
ALLOWED = (AuthenticationFailed, MalformedSASLResponse)
KEYS = {name: SCRAMKeys.fromPassword("pencil", name) for name in ("SCRAM-SHA-1", "SCRAM-SHA-256")}

# Pieces of the mechanisms' syntax, so that joined lists of them reach deep states.
FRAGMENTS = st.sampled_from(
    [
        b"n", b"y", b"p=tls-unique", b"p=tls-server-end-point", b",", b",,", b"a=", b"n=",
        b"r=", b"s=", b"i=", b"c=", b"p=", b"m=", b"biws", b"eSws", b"user", b"pencil",
        b"=2C", b"=3D", b"=", b"\x00", b"\xff", b"\xc3", "\u00e9".encode(),
        "\u2168".encode(), b"\x07", b" ", b"0" * 32, b"AAAA", b"abc", b"4096",
    ]
)  # fmt: skip
MESSAGES = st.one_of(st.binary(max_size=80), st.lists(FRAGMENTS, max_size=12).map(b"".join))


def attempt(call: Callable[[], object]) -> object:
    """
    Run C{call}; return its step, or the allowed exception it raised.
    """
    try:
        result = call()
    except ALLOWED as e:
        return e
    assert isinstance(result, STEPS), result
    return result


def feed(mechanism: ServerMechanism, messages: list[bytes]) -> None:
    """
    Feed responses one after another, passing keys when asked; once the exchange has
    failed, every further response must be malformed.
    """
    failed = False
    for message in messages:
        result = attempt(lambda message=message: mechanism.respond(message))  # type: ignore[misc]
        if failed:
            assert isinstance(result, MalformedSASLResponse), result
        if isinstance(result, Exception):
            failed = True
        elif isinstance(result, NeedSCRAMKeys):
            result = attempt(lambda: mechanism.keysFound(KEYS.get(mechanism.name)))


class ServerFuzzTests(SynchronousTestCase):
    """
    Arbitrary input to every server mechanism, in every state.
    """

    @settings(max_examples=150)
    @given(
        name=st.sampled_from(SERVER_MECHANISMS),
        initial=st.one_of(st.none(), MESSAGES),
        messages=st.lists(MESSAGES, max_size=4),
        identity=st.one_of(st.none(), st.just("user")),
    )
    def test_anySequence(
        self, name: str, initial: bytes | None, messages: list[bytes], identity: str | None
    ) -> None:
        """
        Any initial response and any following responses give only steps and the two
        allowed errors.
        """
        mechanism = serverMechanism(name, tlsIdentity=identity)
        result = attempt(lambda: mechanism.start(initial))
        if isinstance(result, NeedSCRAMKeys):
            attempt(lambda: mechanism.keysFound(KEYS[name]))
        feed(mechanism, messages)

    @settings(max_examples=100)
    @given(
        name=st.sampled_from(["SCRAM-SHA-1", "SCRAM-SHA-256"]),
        known=st.booleans(),
        final=MESSAGES,
        acknowledgement=MESSAGES,
    )
    def test_scramLaterStates(
        self, name: str, known: bool, final: bytes, acknowledgement: bytes
    ) -> None:
        """
        After a valid client-first message, for a known or an unknown user, any
        client-final message, and after a valid exchange any acknowledgement, give only
        steps and the two allowed errors.
        """
        client = clientMechanism(name, "user", "pencil")
        mechanism = serverMechanism(name)
        first = client.initialResponse()
        assert first is not None
        self.assertIsInstance(mechanism.start(first), NeedSCRAMKeys)
        step = mechanism.keysFound(KEYS[name] if known else None)
        assert isinstance(step, Challenge)
        clientFinal = client.respond(step.data)
        attempt(lambda: mechanism.respond(final))

        mechanism = serverMechanism(name)
        client = clientMechanism(name, "user", "pencil")
        mechanism.start(client.initialResponse())  # type: ignore[arg-type]
        step = mechanism.keysFound(KEYS[name])
        assert isinstance(step, Challenge)
        clientFinal = client.respond(step.data)
        self.assertIsInstance(mechanism.respond(clientFinal), Challenge)
        result = attempt(lambda: mechanism.respond(acknowledgement))
        if acknowledgement:
            self.assertIsInstance(result, MalformedSASLResponse)
        else:
            self.assertEqual(result, Verified("user"))


class ClientFuzzTests(SynchronousTestCase):
    """
    Arbitrary challenges to every client mechanism.
    """

    @settings(max_examples=150)
    @given(
        name=st.sampled_from([*CLIENT_PREFERENCE, "EXTERNAL"]),
        sendInitial=st.booleans(),
        challenges=st.lists(MESSAGES, max_size=4),
    )
    def test_anyChallenges(self, name: str, sendInitial: bool, challenges: list[bytes]) -> None:
        """
        Any challenges give responses (bytes), L{MalformedSASLChallenge} or
        L{AuthenticationFailed}, and nothing else.
        """
        client = clientMechanism(name, "user", "pencil")
        if sendInitial:
            client.initialResponse()
        for challenge in challenges:
            try:
                response = client.respond(challenge)
            except (MalformedSASLChallenge, AuthenticationFailed):
                break
            self.assertIsInstance(response, bytes)
