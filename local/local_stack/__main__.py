"""``python -m local_stack serve|token`` (local_stack.cli)."""

import sys

from .cli import main

if __name__ == "__main__":  # not when a function instance (multiprocessing, spawn) re-imports this module
    sys.exit(main())
