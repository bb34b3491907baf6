"""
The C{twistd pop3kit} plugin.  Importing this file does not import pop3kit.
"""

from twisted.application.service import ServiceMaker

pop3kit = ServiceMaker(  # type: ignore[no-untyped-call]
    "pop3kit",
    "pop3kit.tap",
    "A POP3 server (RFC 1939, RFC 2449) serving Maildirs.",
    "pop3kit",
)
