# -*- test-case-name: tests.test_fetch,tests.test_scan -*-
"""
C{pop3kit fetch} and C{pop3kit scan}: download mail from a POP3 server into a Maildir or an
mbox file, or list what a maildrop holds.

The work is done by the coroutines L{fetch} and L{scan}, which take the reactor (and,
for tests, how to connect and how to run blocking calls) as arguments; L{runInReactor}
runs one of them on the global reactor for the command line.  One module per concern:

  - L{pop3kit._fetch._account}: the URL, the password, the connection options;
  - L{pop3kit._fetch._session}: connecting and logging in;
  - L{pop3kit._fetch._destinations}: the Maildir and mbox sinks, and line ends;
  - L{pop3kit._fetch._state}: the state file of UIDLs;
  - L{pop3kit._fetch._progress}: the progress bar;
  - L{pop3kit._fetch._fetcher}: L{Fetcher} and L{fetch};
  - L{pop3kit._fetch._scanner}: L{Scanner} and L{scan};
  - L{pop3kit._fetch._run}: running on the global reactor and in its thread pool.

The exit statuses and the classification of failures are in L{pop3kit._exits}, shared
with the rest of the command line.
"""

from pop3kit._exits import (
    EX_CANTCREAT,
    EX_NOHOST,
    EX_NOPERM,
    EX_PROTOCOL,
    EX_TEMPFAIL,
    EX_TLS,
    EX_UNAVAILABLE,
    EX_USAGE,
    ExitError,
    ExitStatus,
)
from pop3kit._fetch._account import (
    POP3_PORT,
    POP3S_PORT,
    Account,
    ConnectOptions,
    parseURL,
    readPassword,
)
from pop3kit._fetch._destinations import Destination, DiskSync, parseDestination
from pop3kit._fetch._failures import Activity, describeFailure
from pop3kit._fetch._fetcher import (
    BATCH_MESSAGES,
    BATCH_OCTETS,
    Fetcher,
    FetchOptions,
    FetchResult,
    fetch,
)
from pop3kit._fetch._progress import Progress
from pop3kit._fetch._run import RunInThread, inThreadPool, runInReactor
from pop3kit._fetch._scanner import Scanner, scan, summarise
from pop3kit._fetch._session import Connector, abortSession, openSession
from pop3kit._fetch._state import StateFile, defaultStatePath

#: The name the fetch code and its tests used for L{ExitError}, which the whole command
#: line now shares.
FetchError = ExitError

__all__ = [
    "BATCH_MESSAGES",
    "BATCH_OCTETS",
    "EX_CANTCREAT",
    "EX_NOHOST",
    "EX_NOPERM",
    "EX_PROTOCOL",
    "EX_TEMPFAIL",
    "EX_TLS",
    "EX_UNAVAILABLE",
    "EX_USAGE",
    "POP3S_PORT",
    "POP3_PORT",
    "Account",
    "Activity",
    "ConnectOptions",
    "Connector",
    "Destination",
    "DiskSync",
    "ExitError",
    "ExitStatus",
    "FetchError",
    "FetchOptions",
    "FetchResult",
    "Fetcher",
    "Progress",
    "RunInThread",
    "Scanner",
    "StateFile",
    "abortSession",
    "defaultStatePath",
    "describeFailure",
    "fetch",
    "inThreadPool",
    "openSession",
    "parseDestination",
    "parseURL",
    "readPassword",
    "runInReactor",
    "scan",
    "summarise",
]
