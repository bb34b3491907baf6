"""
C{python -m pop3kit}: the C{pop3kit} command (L{pop3kit.cli.main}).
"""

import sys

from pop3kit.cli import main

if __name__ == "__main__":
    sys.exit(main())
