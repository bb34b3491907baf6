#!/usr/bin/env python3
"""
A checkpassword program (https://cr.yp.to/checkpwd/interface.html) for
C{twistd pop3kit --auth checkpassword:/path/to/checkpw.py}.

Users are lines C{name:salt:key} in the file named by C{$CHECKPW_USERS} (default
C{/etc/pop3kit/checkpw-users}), where C{key} is the hex scrypt hash of the password with
the hex C{salt}.  Make a C{salt:key} pair with::

    python3 checkpw.py --hash < file-holding-the-password
"""

import hashlib
import hmac
import os
import secrets
import sys

USERS = os.environ.get("CHECKPW_USERS", "/etc/pop3kit/checkpw-users")
REJECTED, TEMPORARY = 1, 111


def scrypt(password: bytes, salt: bytes) -> bytes:
    """
    The scrypt hash of C{password}: 16 MiB of memory, about 50 ms.
    """
    return hashlib.scrypt(password, salt=salt, n=2**14, r=8, p=1, dklen=32)


def readRequest() -> tuple[bytes, bytes]:
    """
    Read name and password from descriptor 3: C{name NUL password NUL timestamp NUL}, at
    most 512 bytes.
    """
    data = b""
    while chunk := os.read(3, 513 - len(data)):
        data += chunk
        if len(data) > 512:
            sys.exit(2)
    os.close(3)
    fields = data.split(b"\0")
    if len(fields) < 4:
        sys.exit(2)
    return fields[0], fields[1]


def storedEntry(name: bytes) -> tuple[bytes, bytes] | None:
    """
    The salt and key of user C{name}, or C{None} if there is no such user.
    """
    try:
        with open(USERS, "rb") as f:
            for line in f:
                user, _, rest = line.rstrip(b"\n").partition(b":")
                if user == name:
                    salt, _, key = rest.partition(b":")
                    return bytes.fromhex(salt.decode()), bytes.fromhex(key.decode())
    except (OSError, ValueError) as e:
        # Not the user's fault: a temporary failure, -ERR [SYS/TEMP] for the client.
        print(f"checkpw: cannot read {USERS}: {e}", file=sys.stderr)
        sys.exit(TEMPORARY)
    return None


def main() -> None:
    """
    Check the password; on success, run the program named by our arguments.
    """
    if sys.argv[1:] == ["--hash"]:
        salt = secrets.token_bytes(16)
        password = sys.stdin.buffer.read().rstrip(b"\n")
        print(f"{salt.hex()}:{scrypt(password, salt).hex()}")
        return
    if len(sys.argv) < 2:
        sys.exit(2)
    name, password = readRequest()
    entry = storedEntry(name)
    # Unknown users cost a hash too, so that timing does not tell who exists.
    salt, key = entry if entry is not None else (b"\0" * 16, b"")
    if not hmac.compare_digest(scrypt(password, salt), key) or entry is None:
        sys.exit(REJECTED)
    os.execvp(sys.argv[1], sys.argv[1:])  # noqa: S606 (the interface: run the subprogram)


if __name__ == "__main__":
    main()
