"""Net Surgery Viewer: `python main.py [view|surgery|map|...] ...` (see README.md)."""
import sys

from viewer.cli import main

if __name__ == "__main__":
    sys.exit(main())
