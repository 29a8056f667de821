"""Entry point of the plain app: ``python examples/plain_app/app.py [--crash] [--forever]``.

No faultlens import anywhere: run it with ``faultlens run --modules 'plain_app*' -- python
examples/plain_app/app.py`` to get its errors classified and journaled. The script stays
thin because Python runs the main script directly (it is never imported), so faultlens can
instrument the modules it imports but not the script's own functions.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from plain_app.orders import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
