"""``python -m tests.soak``: the on-demand fault soak (see ``run.py``)."""

import sys

from .run import main

sys.exit(main())
