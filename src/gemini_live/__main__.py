"""``python -m gemini_live``: the ``gemini-live`` command line."""

from __future__ import annotations

import sys

from gemini_live.cli import main

if __name__ == "__main__":
    sys.exit(main())
