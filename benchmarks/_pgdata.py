"""
PostgreSQL test data for ``benchmarks/run.py --storage postgresql``: a private PostgreSQL
server (``tests._postgres.PostgreSQLServer``: ``initdb`` into the work directory's
temporary directory, loopback TCP, ``fsync=off``, run as ``nobody`` under root), one
database created with ``pop3kit storage init``, and the messages stored through the
transaction of ``PostgreSQLDelivery.store``, one transaction per user.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests._postgres import PostgreSQLServer, _program  # noqa: E402

#: The private server of this benchmark run, once started.
_server: PostgreSQLServer | None = None


def startPostgreSQL() -> str:
    """
    Start the private PostgreSQL server, create a database and pop3kit's schema in it
    (``pop3kit storage init``); return its connection string.
    """
    global _server
    initdb, postgres = _program("initdb"), _program("postgres")
    if initdb is None or postgres is None:
        raise SystemExit("PostgreSQL is not installed (Debian package postgresql)")
    _server = PostgreSQLServer(initdb, postgres)
    dsn = _server.newDatabase()
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, [environment.get("PYTHONPATH")])]
    )
    subprocess.run(
        [sys.executable, "-m", "pop3kit", "storage", "init", dsn],
        check=True,
        env=environment,
        stdout=subprocess.DEVNULL,
    )
    return dsn


def stopPostgreSQL() -> None:
    """
    Stop the private server (by its process id) and remove its files, if it was started.
    """
    global _server
    if _server is not None:
        _server.stop()
        _server = None


def storePostgreSQL(dsn: str, jobs: Iterable[tuple[str, bytes]]) -> None:
    """
    Store the messages of C{jobs} (user, message), each user's in one transaction, in
    order, with fresh UIDLs.
    """
    import psycopg

    from pop3kit.backends.postgresql import StoredMessage, _store

    byUser: dict[str, list[StoredMessage]] = defaultdict(list)
    for user, message in jobs:
        byUser[user].append(StoredMessage(uuid.uuid4().hex, message))
    with psycopg.connect(dsn) as connection:
        for user, messages in byUser.items():
            with connection.transaction(), connection.cursor() as cursor:
                _store(cursor, user, messages)
        connection.execute("ANALYZE pop3kit_messages")
