"""``python -m minillm ...`` is the ``minillm`` command."""

import sys

from .cli import main

sys.exit(main())
