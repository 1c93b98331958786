"""`python -m viewer ...`: the same command line as `netsurgery-viewer` and `main.py`."""
import sys

from viewer.cli import main

sys.exit(main())
