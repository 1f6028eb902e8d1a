"""C{python -m harness.kafka}: a cluster in the foreground, or only the jar download."""

import sys

from harness.kafka.cluster import main

sys.exit(main())
