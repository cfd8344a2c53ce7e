"""`python -m ferkit`: the same command as `ferkit`."""

import sys

from ferkit.cli import main

sys.exit(main())
