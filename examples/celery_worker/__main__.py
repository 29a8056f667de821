"""``python examples/celery_worker [--jobs N] [--broker URL] [--endpoint URL]``."""

import os
import sys

if not __package__:  # run as a directory: make the package importable by its name
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from celery_worker.run import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
