"""
Print trial's closing line as "N passed, N failed, N skipped".
"""

import re
import sys


def main(path: str) -> int:
    """
    Read a trial log and print its counts; exit 1 if no summary line is found.
    """
    with open(path, encoding="utf-8", errors="replace") as log:
        lines = log.read().splitlines()
    for line in reversed(lines):
        match = re.fullmatch(r"(PASSED|FAILED) \((.*)\)", line.strip())
        if match:
            counts = dict(
                (key, int(value))
                for key, value in (item.split("=") for item in match.group(2).split(", "))
            )
            passed = counts.get("successes", 0)
            failed = sum(
                counts.get(key, 0) for key in ("failures", "errors", "unexpectedSuccesses")
            )
            skipped = counts.get("skips", 0) + counts.get("expectedFailures", 0)
            print(f"{passed} passed, {failed} failed, {skipped} skipped")
            return 0
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
