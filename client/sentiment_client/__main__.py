"""``python -m sentiment_client score IN OUT [--column text] [--url URL] [--token TOKEN] ...``"""

from .cli import main

raise SystemExit(main())
