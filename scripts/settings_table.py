"""Print or rewrite the README's configuration reference from the settings table.

    python scripts/settings_table.py --markdown
    python scripts/settings_table.py --update README.md

(tests/unit/test_settings_table.py fails when the README and the table differ.)
"""

from __future__ import annotations

from faultlens._options import main

if __name__ == "__main__":
    raise SystemExit(main())
