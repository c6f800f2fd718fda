"""``python -m devstack`` is an alias of the ``firecrest-stack`` console script."""

import sys

from devstack.cli import main

sys.exit(main())
