"""``python -m local_stack serve|token`` (local_stack.cli)."""

import sys

from .cli import main

sys.exit(main())
