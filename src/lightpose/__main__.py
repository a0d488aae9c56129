"""`python -m lightpose ...` runs the `lightpose` command."""

import sys

from lightpose.cli.main import main

sys.exit(main())
