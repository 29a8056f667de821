"""``python -m faultlens.cli``: the ``faultlens`` command."""

import sys

from faultlens.cli import main

sys.exit(main())
