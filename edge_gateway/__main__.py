"""``python -m edge_gateway run --config FILE``: the same as ``klupa gateway``."""

import sys

from edge_gateway.cli import main

sys.exit(main(sys.argv[1:]))
