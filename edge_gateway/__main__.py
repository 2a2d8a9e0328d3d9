"""``python -m edge_gateway run --config FILE``: the same as ``klupa gateway``."""

import sys

from edge_gateway.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
