"""
Check the contents of the built pop3kit wheel.

Usage: C{python .ci/check_wheel.py DIST_DIR}, where C{DIST_DIR} holds exactly one
C{pop3kit-*.whl}.  Exits non-zero, listing every problem, if the wheel:

  - lacks the Twisted plugins or C{py.typed};
  - ships C{twisted/__init__.py} or C{twisted/plugins/__init__.py}, which would overwrite
    Twisted's own files and break C{twistd} for everyone once pop3kit is uninstalled;
  - ships anything else under C{twisted/} (a C{dropin.cache}, a stray module), which would
    likewise overwrite or pollute Twisted's package;
  - ships a top-level package other than C{pop3kit} and C{twisted}, such as C{tests}.
"""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

REQUIRED = [
    "twisted/plugins/pop3kit_plugin.py",
    "twisted/plugins/pop3kit_checkers.py",
    "pop3kit/py.typed",
]

FORBIDDEN = [
    "twisted/__init__.py",
    "twisted/plugins/__init__.py",
]

# The only files the wheel may put into Twisted's package.
_OWN_PLUGIN = re.compile(r"twisted/plugins/pop3kit_\w+\.py")


def problems(names: list[str]) -> list[str]:
    """
    Describe what is wrong with a wheel holding the files C{names}.

    @param names: The wheel's member names, as L{zipfile.ZipFile.namelist} gives them.
    @return: One line per problem; empty if the wheel is fine.
    """
    found = set(names)
    result = [f"missing: {name}" for name in REQUIRED if name not in found]
    result += [f"must not ship: {name}" for name in FORBIDDEN if name in found]
    for name in sorted(found):
        top = name.split("/")[0]
        if top.endswith(".dist-info") or top == "pop3kit":
            continue
        if top == "twisted":
            if name not in FORBIDDEN and not _OWN_PLUGIN.fullmatch(name):
                result.append(f"unexpected file in Twisted's package: {name}")
            continue
        result.append(f"unexpected top-level entry: {name}")
    return result


def main(argv: list[str]) -> int:
    """
    Check the one wheel in the directory C{argv[1]}.

    @return: The exit status: 0 if the wheel is fine, 1 if not, 2 on bad usage.
    """
    if len(argv) != 2:
        print(f"usage: {argv[0]} DIST_DIR", file=sys.stderr)
        return 2
    wheels = sorted(Path(argv[1]).glob("pop3kit-*.whl"))
    if len(wheels) != 1:
        print(f"expected one pop3kit wheel in {argv[1]}, found {len(wheels)}", file=sys.stderr)
        return 2
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
    found = problems(names)
    for problem in found:
        print(f"{wheels[0].name}: {problem}", file=sys.stderr)
    if found:
        return 1
    print(f"{wheels[0].name}: OK ({len(names)} files)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
