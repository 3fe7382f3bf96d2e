"""``python -m simplecnn``: the same as the ``simplecnn`` command."""

from simplecnn.cli import main

raise SystemExit(main())
