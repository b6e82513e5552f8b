"""Entry point of a target node process started by :func:`harness.targets.launch`."""

import sys

from harness.targets.node import main

sys.exit(main(sys.argv[1:]))
