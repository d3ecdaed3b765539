"""``python -m minillm ...`` is the ``minillm`` command."""

import sys

from .tools.cli import main

sys.exit(main())
