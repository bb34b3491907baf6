"""
The zero-configuration data layout shared by C{twistd pop3kit} and the C{pop3kit} command:
one data directory holding the users' passwd-file and a Maildir per user.
"""

from __future__ import annotations

import os

#: The data directory of the zero-configuration mode, relative to the working directory.
DEFAULT_DATA_DIR = "pop3kit-data"


def passwdPath(dataDir: str) -> str:
    """
    The passwd-file of the layout rooted at C{dataDir}.
    """
    return os.path.join(dataDir, "passwd")


def maildirRoot(dataDir: str) -> str:
    """
    The directory holding one Maildir per user in the layout rooted at C{dataDir}.
    """
    return os.path.join(dataDir, "mail")
