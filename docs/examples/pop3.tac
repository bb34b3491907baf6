# pop3.tac: pop3kit inside a twistd application.  Run it with
#
#     POP3_DATA_DIR=/var/lib/mail twistd -ny pop3.tac
#
# next to embed.py.  POP3_LISTEN (default tcp:1110:interface=127.0.0.1) and
# POP3_TLS_CERTIFICATE with POP3_TLS_KEY (STLS) configure it further.
import os
import sys

from twisted.application.service import Application
from twisted.internet import reactor

# twistd -y does not put the .tac file's directory on sys.path: do it, to import embed.py.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from embed import DEFAULT_LISTEN, makePOP3Service, tlsFromFiles  # noqa: E402

application = Application("mail")
makePOP3Service(
    reactor,
    os.environ.get("POP3_LISTEN", DEFAULT_LISTEN),
    os.environ.get("POP3_DATA_DIR", "/var/lib/mail"),
    tlsFromFiles(os.environ.get("POP3_TLS_CERTIFICATE"), os.environ.get("POP3_TLS_KEY")),
).setServiceParent(application)
