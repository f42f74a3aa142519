"""`python -m system.play`: see system/play/cli.py."""

import sys

from system.play.cli import main

sys.exit(main())
